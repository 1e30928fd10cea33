//! Field sets as server-side apply stores them in `metadata.managedFields[].fieldsV1`
//! (structured-merge-diff's `FieldsV1` encoding): `f:<field>`, `k:<json keys>`, `v:<json value>`,
//! `i:<index>`, with `"."` marking a node that is owned itself and also has owned children.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::schema::{Shape, SsaList, TypeDef, field_shape, key_default};

/// A set of field paths, as a tree of path elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    /// This path itself is in the set.
    pub own: bool,
    /// Children by encoded path element (`f:name`, `k:{..}`, `v:..`, `i:N`).
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Parses a `fieldsV1` object.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(m) = v else {
            return Err("fieldsV1 must be an object".to_owned());
        };
        let mut set = FieldSet {
            own: m.is_empty(),
            ..FieldSet::default()
        };
        for (k, child) in m {
            if k == "." {
                set.own = true;
                continue;
            }
            if !(k.starts_with("f:")
                || k.starts_with("k:")
                || k.starts_with("v:")
                || k.starts_with("i:"))
            {
                return Err(format!("unknown path element {k:?} in fieldsV1"));
            }
            set.children
                .insert(k.clone(), FieldSet::from_fields_v1(child)?);
        }
        Ok(set)
    }

    /// Encodes the set as a `fieldsV1` object (the root's own marker is not encoded).
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for (k, c) in &self.children {
            if c.is_empty() {
                continue;
            }
            m.insert(k.clone(), c.encode_node());
        }
        Value::Object(m)
    }

    fn encode_node(&self) -> Value {
        let mut m = Map::new();
        if self.own && self.children.values().any(|c| !c.is_empty()) {
            m.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            if !c.is_empty() {
                m.insert(k.clone(), c.encode_node());
            }
        }
        Value::Object(m)
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.own && self.children.values().all(FieldSet::is_empty)
    }

    /// The child node for a path element, created if missing.
    pub fn child(&mut self, pe: &str) -> &mut FieldSet {
        self.children.entry(pe.to_owned()).or_default()
    }

    /// Adds every path of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.own |= other.own;
        for (k, c) in &other.children {
            self.child(k).union(c);
        }
    }

    /// Removes every path of `other`.
    pub fn subtract(&mut self, other: &FieldSet) {
        if other.own {
            self.own = false;
        }
        for (k, c) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.subtract(c);
            }
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// Paths of the set (each a list of path elements), parents before children.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut out);
        out
    }

    fn walk(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.own && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.walk(prefix, out);
            prefix.pop();
        }
    }

    /// The node at `path`, if present.
    pub fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut cur = self;
        for pe in path {
            cur = cur.children.get(pe)?;
        }
        Some(cur)
    }

    /// True when `path` or any path below it is in the set.
    pub fn touches(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }
}

/// Renders a path the way structured-merge-diff prints it: `.spec.replicas`,
/// `.spec.containers[name="nginx"].image`, `.metadata.finalizers[="x"]`.
pub(crate) fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let parts = match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                Err(_) => k.to_owned(),
            };
            s.push_str(&format!("[{parts}]"));
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// The `k:` path element of a list-map element: its key fields as a JSON object in key order.
pub(crate) fn key_element(elem: &Value, keys: &[&str]) -> Result<String, String> {
    let Value::Object(m) = elem else {
        return Err("element of an associative list is not an object".to_owned());
    };
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let mut k = Map::new();
    for name in sorted {
        let v = match m.get(name) {
            Some(v) if !v.is_null() => v.clone(),
            _ => key_default(name).ok_or_else(|| {
                format!("associative list with keys has an element that omits key field {name:?}")
            })?,
        };
        k.insert(name.to_owned(), v);
    }
    Ok(format!("k:{}", Value::Object(k)))
}

/// Adds the paths that an applied configuration sets (leaves, atomic values and list items).
/// `marked_maps` adds the `.` member for maps, as Update operations record newly created maps.
pub(crate) fn collect_object(
    obj: &Map<String, Value>,
    ty: Option<&'static TypeDef>,
    set: &mut FieldSet,
    marked_maps: bool,
    path: &str,
) -> Result<(), String> {
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let shape = field_shape(ty, k);
        collect_field(
            v,
            shape,
            set.child(&format!("f:{k}")),
            marked_maps,
            &format!("{path}.{k}"),
        )?;
    }
    Ok(())
}

/// Adds the paths of one field value of the given shape.
pub(crate) fn collect_field(
    v: &Value,
    shape: Shape,
    node: &mut FieldSet,
    marked_maps: bool,
    path: &str,
) -> Result<(), String> {
    match (v, shape) {
        (Value::Object(_), Shape::AtomicObject) => node.own = true,
        (Value::Object(m), Shape::Object(t)) => {
            if m.values().all(Value::is_null) {
                node.own = true;
            } else {
                collect_object(m, t, node, marked_maps, path)?;
            }
        }
        (Value::Object(m), Shape::Map) => {
            if m.values().all(Value::is_null) || marked_maps {
                node.own = true;
            }
            collect_object(m, None, node, marked_maps, path)?;
        }
        (
            Value::Array(a),
            Shape::List {
                ssa: SsaList::Set, ..
            },
        ) if !a.is_empty() => {
            for item in a {
                if item.is_object() || item.is_array() {
                    return Err(format!("{path}: set lists may only hold scalars"));
                }
                node.child(&format!("v:{item}")).own = true;
            }
        }
        (
            Value::Array(a),
            Shape::List {
                ssa: SsaList::Map(keys),
                elem,
                ..
            },
        ) if !a.is_empty() => {
            for (i, item) in a.iter().enumerate() {
                let pe =
                    key_element(item, keys).map_err(|e| format!("{path}: element {i}: {e}"))?;
                let child = node.child(&pe);
                child.own = true;
                if let Value::Object(m) = item {
                    collect_object(m, elem, child, marked_maps, &format!("{path}[{i}]"))?;
                }
            }
        }
        _ => node.own = true,
    }
    Ok(())
}

/// Finds the value at a field path inside `root`.
pub(crate) fn value_at<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = root;
    for pe in path {
        cur = step(cur, pe)?;
    }
    Some(cur)
}

fn matches_key(item: &Value, k: &Map<String, Value>) -> bool {
    k.iter().all(|(name, want)| match item.get(name) {
        Some(v) if !v.is_null() => v == want,
        _ => key_default(name).as_ref() == Some(want),
    })
}

fn step<'a>(cur: &'a Value, pe: &str) -> Option<&'a Value> {
    if let Some(f) = pe.strip_prefix("f:") {
        return cur.as_object()?.get(f);
    }
    let list = cur.as_array()?;
    if let Some(k) = pe.strip_prefix("k:") {
        let k: Map<String, Value> = serde_json::from_str(k).ok()?;
        return list.iter().find(|item| matches_key(item, &k));
    }
    if let Some(v) = pe.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        return list.iter().find(|item| **item == v);
    }
    let i: usize = pe.strip_prefix("i:")?.parse().ok()?;
    list.get(i)
}

/// Removes the value at `path` from `root`. Objects and lists left empty by the removal are pruned as well
/// unless `keep` says someone owns them. Returns true when something was removed.
pub(crate) fn remove_at(
    root: &mut Value,
    path: &[String],
    keep: &dyn Fn(&[String]) -> bool,
) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let removed = {
        let Some(parent) = value_at_mut(root, parents) else {
            return false;
        };
        remove_child(parent, last)
    };
    if removed {
        // Prune ancestors that became empty objects because of this removal.
        let mut depth = parents.len();
        while depth > 0 {
            let prefix = &path[..depth];
            // Go's `omitempty` drops empty maps and slices when Kubernetes re-encodes the object,
            // so a container left without env vars has no `env` field at all.
            let empty = value_at(root, prefix).is_some_and(|v| match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            });
            if !empty || keep(prefix) {
                break;
            }
            let Some(parent) = value_at_mut(root, &path[..depth - 1]) else {
                break;
            };
            remove_child(parent, &path[depth - 1]);
            depth -= 1;
        }
    }
    removed
}

fn remove_child(parent: &mut Value, pe: &str) -> bool {
    if let Some(f) = pe.strip_prefix("f:") {
        return parent
            .as_object_mut()
            .and_then(|m| m.shift_remove(f))
            .is_some();
    }
    let Some(list) = parent.as_array_mut() else {
        return false;
    };
    let before = list.len();
    if let Some(k) = pe.strip_prefix("k:") {
        if let Ok(k) = serde_json::from_str::<Map<String, Value>>(k) {
            list.retain(|item| !matches_key(item, &k));
        }
    } else if let Some(v) = pe.strip_prefix("v:") {
        if let Ok(v) = serde_json::from_str::<Value>(v) {
            list.retain(|item| *item != v);
        }
    } else if let Some(i) = pe.strip_prefix("i:").and_then(|i| i.parse::<usize>().ok())
        && i < list.len()
    {
        list.remove(i);
    }
    list.len() != before
}

fn value_at_mut<'a>(root: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = root;
    for pe in path {
        cur = if let Some(f) = pe.strip_prefix("f:") {
            cur.as_object_mut()?.get_mut(f)?
        } else if let Some(k) = pe.strip_prefix("k:") {
            let k: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array_mut()?
                .iter_mut()
                .find(|item| matches_key(item, &k))?
        } else if let Some(v) = pe.strip_prefix("v:") {
            let v: Value = serde_json::from_str(v).ok()?;
            cur.as_array_mut()?.iter_mut().find(|item| **item == v)?
        } else {
            let i: usize = pe.strip_prefix("i:")?.parse().ok()?;
            cur.as_array_mut()?.get_mut(i)?
        };
    }
    Some(cur)
}

/// One field that an apply would change although another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name, e.g. `kubectl-scale`.
    pub manager: String,
    /// The other manager's apiVersion. Empty for Apply managers, whose identity Kubernetes
    /// records without a version.
    pub api_version: String,
    /// The conflicting field, in structured-merge-diff notation (`.spec.replicas`).
    pub field: String,
    /// The other manager's operation: `Apply` or `Update`.
    pub operation: String,
    /// The subresource the other manager wrote through (`scale`, `status`), if any.
    pub subresource: Option<String>,
}

impl Conflict {
    /// How Kubernetes names the manager in conflict messages (`printManager`):
    /// `"kubectl-edit" using apps/v1`, `"kubectl-scale" with subresource "scale" using apps/v1`,
    /// or just `"kubectl"` for an Apply manager.
    pub fn manager_display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}
