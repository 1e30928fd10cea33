//! Strategic merge patch as the Kubernetes API server applies it
//! (`k8s.io/apimachinery/pkg/util/strategicpatch`, `mergeMap` with `MergeParallelList` and
//! `IgnoreUnmatchedNulls`). The list metadata comes from [`crate::schema`].

use serde_json::{Map, Value};

use crate::PatchError;
use crate::schema::{Shape, SmpList, TypeDef, field_shape};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

fn child(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}

/// Merges `patch` into `original` (a map of type `ty`). `path` is used only in error messages.
pub(crate) fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Option<&'static TypeDef>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.shift_remove(DIRECTIVE) {
        return match directive.as_str() {
            // `$patch: replace`: the patch map replaces the live one.
            Some("replace") => merge_map(Map::new(), patch, ty, path),
            // `$patch: delete`: Kubernetes returns an empty map.
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::BadPatchType {
                directive: directive_text(&directive),
                path: display_path(path),
            }),
        };
    }

    apply_retain_keys(&mut original, &mut patch, path)?;
    apply_set_element_order(&mut original, &mut patch, ty, path)?;

    let mut deletions = Vec::new();
    for (key, patch_value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            deletions.push((field.to_owned(), patch_value));
            continue;
        }
        if key.starts_with('$') {
            // Unknown directives never reach the stored object.
            continue;
        }
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let shape = field_shape(ty, &key);
        let fpath = child(path, &key);
        match original.get_mut(&key) {
            // Merging in place keeps the live key order.
            Some(slot) => {
                let live = std::mem::take(slot);
                *slot = merge_value(live, patch_value, shape, &fpath)?;
            }
            None => {
                let value = fresh(patch_value, shape, &fpath)?;
                original.insert(key, value);
            }
        }
    }
    for (field, values) in deletions {
        let fpath = child(path, &field);
        let Value::Array(to_delete) = values else {
            return Err(PatchError::BadDirective {
                directive: format!("{DELETE_PRIMITIVE_PREFIX}{field}"),
                path: display_path(path),
                reason: "value must be a list".to_owned(),
            });
        };
        if let Some(Value::Array(list)) = original.get_mut(&field) {
            if list.iter().any(|v| v.is_object() || v.is_array()) {
                return Err(PatchError::BadList {
                    path: fpath,
                    reason: "$deleteFromPrimitiveList applies only to lists of scalars".to_owned(),
                });
            }
            list.retain(|v| !to_delete.contains(v));
        }
    }
    Ok(original)
}

fn directive_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind_of(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn merge_value(
    original: Value,
    patch: Value,
    shape: Shape,
    path: &str,
) -> Result<Value, PatchError> {
    if kind_of(&original) != kind_of(&patch) {
        return fresh(patch, shape, path);
    }
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => {
            let ty = match shape {
                Shape::Object(t) => t,
                _ => None,
            };
            Ok(Value::Object(merge_map(o, p, ty, path)?))
        }
        (Value::Array(o), Value::Array(p)) => match shape {
            Shape::List {
                smp: SmpList::MergeKey(key),
                elem,
                ..
            } => Ok(Value::Array(merge_list(o, p, Some(key), elem, path)?)),
            Shape::List {
                smp: SmpList::MergePrimitive,
                elem,
                ..
            } => Ok(Value::Array(merge_list(o, p, None, elem, path)?)),
            _ => Ok(Value::Array(p)),
        },
        (_, p) => Ok(p),
    }
}

/// A patch value with nothing to merge into: directives are still processed (and removed) and
/// nulls dropped, so that the stored object never contains patch syntax.
fn fresh(patch: Value, shape: Shape, path: &str) -> Result<Value, PatchError> {
    match patch {
        Value::Object(p) => {
            let ty = match shape {
                Shape::Object(t) => t,
                _ => None,
            };
            Ok(Value::Object(merge_map(Map::new(), p, ty, path)?))
        }
        Value::Array(p) => match shape {
            Shape::List {
                smp: SmpList::MergeKey(key),
                elem,
                ..
            } => Ok(Value::Array(merge_list(
                Vec::new(),
                p,
                Some(key),
                elem,
                path,
            )?)),
            Shape::List {
                smp: SmpList::MergePrimitive,
                elem,
                ..
            } => Ok(Value::Array(merge_list(Vec::new(), p, None, elem, path)?)),
            _ => Ok(Value::Array(p)),
        },
        other => Ok(other),
    }
}

/// Checks that the elements are all scalars or all objects (no lists of lists) and tells which.
fn elements_are_objects(lists: &[&[Value]], path: &str) -> Result<Option<bool>, PatchError> {
    let mut seen: Option<u8> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = kind_of(v);
        if k == 4 {
            return Err(PatchError::BadList {
                path: path.to_owned(),
                reason: "lists of lists are not supported".to_owned(),
            });
        }
        match seen {
            None => seen = Some(k),
            Some(prev) if prev != k => {
                return Err(PatchError::BadList {
                    path: path.to_owned(),
                    reason: "list element types are not identical".to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(seen.map(|k| k == 5))
}

fn key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// Position of `item` in `order`: by merge key for objects, by value for scalars.
fn index_in(order: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        Some(k) if item.is_object() => {
            let want = key_of(item, k)?;
            order.iter().position(|o| key_of(o, k) == Some(want))
        }
        _ => order.iter().position(|o| o == item),
    }
}

/// `mergeSlice`: merges a patch list into a live list with strategy merge.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&'static str>,
    elem: Option<&'static TypeDef>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let objects = elements_are_objects(&[&original, &patch], path)?.unwrap_or(false);
    if !objects {
        // Lists of scalars merge as sets: live values plus new patch values, deduplicated.
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
            merged.into_iter().partition(|v| patch.contains(v));
        return Ok(normalize_element_order(
            in_patch,
            server_only,
            &patch,
            &original,
            None,
        ));
    }
    let Some(key) = merge_key else {
        return Err(PatchError::BadList {
            path: path.to_owned(),
            reason: "cannot merge lists of objects without a merge key".to_owned(),
        });
    };

    // Special elements first: `$patch: delete` removes by key, `$patch: replace` replaces.
    let mut original = original;
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.as_object().and_then(|m| m.get(DIRECTIVE)).cloned() else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(value) = key_of(&item, key).cloned() else {
                    return Err(PatchError::MissingMergeKey {
                        key: key.to_owned(),
                        path: path.to_owned(),
                    });
                };
                original.retain(|o| key_of(o, key) != Some(&value));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::MergeDirectiveInList {
                    path: path.to_owned(),
                });
            }
            _ => {
                return Err(PatchError::BadPatchType {
                    directive: directive_text(&directive),
                    path: path.to_owned(),
                });
            }
        }
    }
    let (original, patch) = if replace {
        let mut items = Vec::with_capacity(plain.len());
        for p in plain {
            items.push(fresh_element(p, elem, path)?);
        }
        (items, Vec::new())
    } else {
        (original, plain)
    };

    let mut merged = original.clone();
    for item in &patch {
        let Some(value) = key_of(item, key) else {
            return Err(PatchError::MissingMergeKey {
                key: key.to_owned(),
                path: path.to_owned(),
            });
        };
        let epath = format!("{path}[{key}={value}]");
        match merged.iter().position(|o| key_of(o, key) == Some(value)) {
            Some(i) => {
                let live = std::mem::take(&mut merged[i]);
                let (Value::Object(l), Value::Object(p)) = (live, item.clone()) else {
                    return Err(PatchError::BadList {
                        path: epath,
                        reason: "element is not an object".to_owned(),
                    });
                };
                merged[i] = Value::Object(merge_map(l, p, elem, &epath)?);
            }
            None => merged.push(fresh_element(item.clone(), elem, &epath)?),
        }
    }
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| index_in(&patch, v, Some(key)).is_some());
    Ok(normalize_element_order(
        in_patch,
        server_only,
        &patch,
        &original,
        Some(key),
    ))
}

fn fresh_element(
    item: Value,
    elem: Option<&'static TypeDef>,
    path: &str,
) -> Result<Value, PatchError> {
    match item {
        Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, elem, path)?)),
        other => Ok(other),
    }
}

/// `normalizeElementOrder`: patch items in patch order, server-only items in live order, then
/// interleaved so that the live relative order is kept where both sides know both items.
fn normalize_element_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    patch_items.sort_by_key(|v| index_in(patch_order, v, merge_key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| index_in(server_order, v, merge_key).unwrap_or(usize::MAX));
    // mergeSortedSlice: a server-only item goes first only when both items are in the live list
    // and it came first there; a new item from the patch otherwise wins the position.
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = index_in(server_order, l, merge_key);
                let ri = index_in(server_order, r, merge_key);
                match (li, ri) {
                    (Some(a), Some(b)) if a < b => out.extend(left.next()),
                    _ => out.extend(right.next()),
                }
            }
        }
    }
    out
}

/// `$retainKeys`: live keys missing from the list are cleared; every patch key must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = |reason: &str| PatchError::BadDirective {
        directive: RETAIN_KEYS.to_owned(),
        path: display_path(path),
        reason: reason.to_owned(),
    };
    let Value::Array(keys) = retain else {
        return Err(bad("value must be a list of field names"));
    };
    let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_PRIMITIVE_PREFIX)
            || k.starts_with(SET_ORDER_PREFIX)
            || k == DIRECTIVE
        {
            continue;
        }
        if !keys.contains(&k.as_str()) {
            return Err(bad(&format!(
                "field {k:?} is in the patch but not in the $retainKeys list"
            )));
        }
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's patch list (if any) and then orders the result
/// as the directive says, keeping server-only items near their live neighbours.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Option<&'static TypeDef>,
    path: &str,
) -> Result<(), PatchError> {
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in order_keys {
        let Some(order_value) = patch.shift_remove(&directive_key) else {
            continue;
        };
        let field = directive_key[SET_ORDER_PREFIX.len()..].to_owned();
        let bad = |reason: String| PatchError::BadDirective {
            directive: directive_key.clone(),
            path: display_path(path),
            reason,
        };
        let Value::Array(order) = order_value else {
            return Err(bad("value must be a list".to_owned()));
        };
        let fpath = child(path, &field);
        let shape = field_shape(ty, &field);
        let merge_key = match shape {
            Shape::List {
                smp: SmpList::MergeKey(k),
                ..
            } => Some(k),
            _ => None,
        };
        let live = match original.get(&field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(_) => return Err(bad(format!("live field {field} is not a list"))),
        };
        let patch_list = match patch.shift_remove(&field) {
            None => None,
            Some(Value::Array(l)) => Some(l),
            Some(Value::Null) => {
                // An explicit null deletes the field; the order directive has nothing to order.
                original.shift_remove(&field);
                continue;
            }
            Some(_) => return Err(bad(format!("patch field {field} is not a list"))),
        };
        if let Some(pl) = &patch_list {
            validate_order(pl, &order, merge_key).map_err(bad)?;
        }
        let live_order = live.clone().unwrap_or_default();
        let merged = match (live, patch_list) {
            (Some(l), None) => l,
            (None, Some(p)) => match fresh(Value::Array(p), shape, &fpath)? {
                Value::Array(a) => a,
                _ => Vec::new(),
            },
            (Some(l), Some(p)) => {
                match merge_value(Value::Array(l), Value::Array(p), shape, &fpath)? {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                }
            }
            (None, None) => continue,
        };
        if let Some(k) = merge_key
            && merged
                .iter()
                .chain(order.iter())
                .any(|v| v.is_object() && key_of(v, k).is_none())
        {
            return Err(PatchError::MissingMergeKey {
                key: k.to_owned(),
                path: fpath,
            });
        }
        let (in_order, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|v| index_in(&order, v, merge_key).is_some());
        let result = normalize_element_order(in_order, server_only, &order, &live_order, merge_key);
        original.insert(field, Value::Array(result));
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list's items (ignoring `$patch` elements) must
/// appear in the order list, in the same relative order.
fn validate_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), String> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = patch_list
        .iter()
        .filter(|v| v.as_object().is_none_or(|m| !m.contains_key(DIRECTIVE)))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        let same = match merge_key {
            Some(k) if items[pi].is_object() => {
                key_of(items[pi], k).is_some() && key_of(items[pi], k) == key_of(&order[oi], k)
            }
            _ => items[pi] == &order[oi],
        };
        if same {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(
            "the order of the patch list does not match the $setElementOrder list".to_owned(),
        );
    }
    Ok(())
}
