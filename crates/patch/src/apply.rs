//! Server-side apply and managedFields bookkeeping, following structured-merge-diff as the
//! Kubernetes API server uses it: Apply computes ownership from the applied configuration,
//! reports conflicts with other managers (unless forced) and removes fields the applier stopped
//! applying; ordinary writes (Update) are always forced and take over the fields they change.

use serde_json::{Map, Value};

use crate::ApplyError;
use crate::fieldset::{
    Conflict, FieldSet, collect_field, collect_object, path_string, remove_at, value_at,
};
use crate::schema::{Shape, SsaList, TypeDef, apply_type, field_shape, has_status_subresource};

/// Metadata fields that are never managed (stripped before computing field sets, like
/// Kubernetes' `stripMeta`).
const UNMANAGED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// One managedFields entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert("operation".into(), Value::String(self.operation.clone()));
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), Value::String(s.clone()));
        }
        Value::Object(m)
    }

    fn conflict(&self, field: String) -> Conflict {
        Conflict {
            manager: self.manager.clone(),
            api_version: if self.operation == "Apply" {
                String::new()
            } else {
                self.api_version.clone()
            },
            field,
            operation: self.operation.clone(),
            subresource: self.subresource.clone(),
        }
    }
}

/// Reads `metadata.managedFields`. Entries that cannot be decoded are dropped, as Kubernetes
/// resets undecodable managed fields instead of failing the write.
fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
            if e.get("fieldsType")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "FieldsV1")
            {
                return None;
            }
            let fields = match e.get("fieldsV1") {
                Some(v) => FieldSet::from_fields_v1(v).ok()?,
                None => FieldSet::default(),
            };
            Some(Entry {
                manager: s("manager").unwrap_or_default(),
                operation: s("operation")?,
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time"),
                subresource: s("subresource").filter(|x| !x.is_empty()),
                fields,
            })
        })
        .collect()
}

/// Writes entries back, dropping empty ones and sorting as Kubernetes does
/// (`sortEncodedManagedFields`: operation, time, manager, apiVersion, subresource).
fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(m) = meta.as_object_mut() {
        if entries.is_empty() {
            m.shift_remove("managedFields");
        } else {
            m.insert(
                "managedFields".into(),
                Value::Array(entries.iter().map(Entry::to_value).collect()),
            );
        }
    }
}

/// The part of an object whose fields are managed: without apiVersion/kind, identity and
/// bookkeeping metadata, and (for the main resource of kinds with a status subresource) status;
/// for the status subresource, only status.
fn managed_view(
    obj: &Value,
    api_version: &str,
    kind: &str,
    subresource: Option<&str>,
) -> Map<String, Value> {
    let mut m = obj.as_object().cloned().unwrap_or_default();
    m.shift_remove("apiVersion");
    m.shift_remove("kind");
    if let Some(Value::Object(meta)) = m.get_mut("metadata") {
        meta.retain(|k, _| !UNMANAGED_META.contains(&k.as_str()));
        if meta.is_empty() {
            m.shift_remove("metadata");
        }
    }
    match subresource {
        Some("status") => m.retain(|k, _| k == "status"),
        _ if has_status_subresource(api_version, kind) => {
            m.shift_remove("status");
        }
        _ => {}
    }
    m
}

/// What a server-side apply request carries.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The stored object, or `None` when the apply creates it.
    pub live: Option<&'a Value>,
    /// The applied configuration (the request body, decoded from YAML or JSON).
    pub applied: &'a Value,
    /// The `fieldManager` query parameter (required for apply).
    pub manager: &'a str,
    /// The `force` query parameter: take ownership of conflicting fields.
    pub force: bool,
    /// apiVersion of the resource (recorded in managedFields).
    pub api_version: &'a str,
    /// kind of the resource (selects the schema).
    pub kind: &'a str,
    /// Current time, RFC 3339, recorded in the manager's entry.
    pub now: &'a str,
}

/// Server-side apply (application/apply-patch+yaml): merges `applied` into `live` (None = create),
/// updates metadata.managedFields, and reports conflicts with other managers unless `force`.
pub fn server_side_apply(req: &ApplyRequest<'_>) -> Result<Value, ApplyError> {
    let Value::Object(applied) = req.applied else {
        return Err(ApplyError::Invalid(
            "the applied configuration must be a JSON object".into(),
        ));
    };
    if req.manager.is_empty() {
        return Err(ApplyError::Invalid(
            "fieldManager is required for apply requests".into(),
        ));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    for (field, want) in [("apiVersion", req.api_version), ("kind", req.kind)] {
        match applied.get(field) {
            Some(Value::String(s)) if s == want => {}
            Some(Value::String(s)) => {
                return Err(ApplyError::Invalid(format!(
                    "{field} {s:?} of the applied configuration does not match {want:?}"
                )));
            }
            None => {
                return Err(ApplyError::Invalid(format!(
                    "{field} must be set in the applied configuration"
                )));
            }
            Some(_) => return Err(ApplyError::Invalid(format!("{field} must be a string"))),
        }
    }
    let ty = apply_type(req.api_version, req.kind);
    let status_reset = has_status_subresource(req.api_version, req.kind);

    let config = managed_view(req.applied, req.api_version, req.kind, None);
    let mut new_set = FieldSet::default();
    collect_object(&config, Some(ty), &mut new_set, false, "").map_err(ApplyError::Invalid)?;

    let Some(live) = req.live else {
        // Create: the applied object itself, owned entirely by the applier.
        let mut created = req.applied.clone();
        if status_reset && let Some(m) = created.as_object_mut() {
            m.shift_remove("status");
        }
        let entry = Entry {
            manager: req.manager.to_owned(),
            operation: "Apply".into(),
            api_version: req.api_version.to_owned(),
            time: Some(req.now.to_owned()),
            subresource: None,
            fields: new_set,
        };
        write_entries(&mut created, vec![entry]);
        return Ok(created);
    };
    if !live.is_object() {
        return Err(ApplyError::Invalid(
            "the live object is not a JSON object".into(),
        ));
    }

    let mut entries = read_entries(live);
    let mine = entries
        .iter()
        .position(|e| e.is(req.manager, "Apply", None));
    let previous = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();

    let mut merged = live.clone();
    if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    merge_into(&mut merged, &Value::Object(config), Some(ty));

    // Conflicts: fields another manager owns whose value this apply changes.
    let live_view = Value::Object(managed_view(live, req.api_version, req.kind, None));
    let merged_cmp = Value::Object(managed_view(&merged, req.api_version, req.kind, None));
    let mut conflicts: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        for path in e.fields.paths() {
            let Some(node) = new_set.node(&path) else {
                continue;
            };
            if !node.own || !node.children.is_empty() {
                continue;
            }
            if value_at(&live_view, &path) != value_at(&merged_cmp, &path) {
                conflicts.push((i, path));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            let mut list: Vec<Conflict> = conflicts
                .iter()
                .map(|(i, p)| entries[*i].conflict(path_string(p)))
                .collect();
            list.sort_by(|a, b| {
                (a.manager_display(), &a.field).cmp(&(b.manager_display(), &b.field))
            });
            return Err(ApplyError::Conflicts(list));
        }
        for (i, path) in &conflicts {
            let mut lost = FieldSet::default();
            let mut node = &mut lost;
            for pe in path {
                node = node.child(pe);
            }
            node.own = true;
            entries[*i].fields.subtract(&lost);
        }
    }

    // Fields this manager applied before and no longer applies are removed, unless another
    // manager still owns them (or something below them).
    let mut dropped = previous.clone();
    dropped.subtract(&new_set);
    let mut others = FieldSet::default();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) != mine {
            others.union(&e.fields);
        }
    }
    let keep = |p: &[String]| others.touches(p) || new_set.touches(p);
    for path in dropped.paths() {
        if others.touches(&path) {
            continue;
        }
        remove_at(&mut merged, &path, &keep);
    }

    let entry = Entry {
        manager: req.manager.to_owned(),
        operation: "Apply".into(),
        api_version: req.api_version.to_owned(),
        time: Some(req.now.to_owned()),
        subresource: None,
        fields: new_set,
    };
    match mine {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// Merges an applied configuration into the live object: objects field by field, list-maps by
/// key, sets by value, everything else replaced.
fn merge_into(live: &mut Value, config: &Value, ty: Option<&'static TypeDef>) {
    let (Value::Object(l), Value::Object(c)) = (&mut *live, config) else {
        *live = config.clone();
        return;
    };
    for (k, cv) in c {
        if cv.is_null() {
            l.shift_remove(k);
            continue;
        }
        let shape = field_shape(ty, k);
        match l.get_mut(k) {
            None => {
                l.insert(k.clone(), cv.clone());
            }
            Some(lv) => merge_field(lv, cv, shape),
        }
    }
}

fn merge_field(lv: &mut Value, cv: &Value, shape: Shape) {
    match (shape, &mut *lv, cv) {
        (Shape::Object(t), Value::Object(_), Value::Object(_)) => merge_into(lv, cv, t),
        (Shape::Map, Value::Object(_), Value::Object(_)) => merge_into(lv, cv, None),
        (
            Shape::List {
                ssa: SsaList::Set, ..
            },
            Value::Array(l),
            Value::Array(c),
        ) => {
            for v in c {
                if !l.contains(v) {
                    l.push(v.clone());
                }
            }
        }
        (
            Shape::List {
                ssa: SsaList::Map(keys),
                elem,
                ..
            },
            Value::Array(l),
            Value::Array(c),
        ) => {
            for item in c {
                let key = crate::fieldset::key_element(item, keys).ok();
                let found = key.as_ref().and_then(|k| {
                    l.iter().position(|x| {
                        crate::fieldset::key_element(x, keys).ok().as_ref() == Some(k)
                    })
                });
                match found {
                    Some(i) => merge_into(&mut l[i], item, elem),
                    None => l.push(item.clone()),
                }
            }
        }
        _ => *lv = cv.clone(),
    }
}

/// Records an ordinary write (create/update/patch by `manager`, operation "Update") in
/// `new.metadata.managedFields`, so that a later apply sees fields owned by e.g. "kubectl-scale"
/// or "kubectl-edit". `subresource` is e.g. `Some("scale")`. Updates are always forced: the
/// fields they change are taken from every other manager.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    let kind = new
        .get("kind")
        .and_then(Value::as_str)
        .or_else(|| old.and_then(|o| o.get("kind")).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    // The scale subresource writes the main resource's fields; its kind is the parent's.
    let ty = apply_type(api_version, &kind);
    // A client that sends managedFields sets them; otherwise the stored ones carry over.
    let mut entries = match new.pointer("/metadata/managedFields") {
        Some(Value::Array(_)) => read_entries(new),
        _ => old.map(read_entries).unwrap_or_default(),
    };
    let view_sub = if subresource == Some("status") {
        Some("status")
    } else {
        None
    };
    let new_view = managed_view(new, api_version, &kind, view_sub);
    let old_view = old
        .map(|o| managed_view(o, api_version, &kind, view_sub))
        .unwrap_or_default();

    let mut changed = FieldSet::default();
    let mut modified = FieldSet::default();
    let mut removed = FieldSet::default();
    diff_object(
        &old_view,
        &new_view,
        Some(ty),
        &mut changed,
        &mut modified,
        &mut removed,
    );

    if !changed.is_empty() || !removed.is_empty() {
        for e in entries.iter_mut() {
            if e.is(manager, "Update", subresource) {
                continue;
            }
            e.fields.subtract(&modified);
            e.fields.subtract(&removed);
        }
        let idx = match entries
            .iter()
            .position(|e| e.is(manager, "Update", subresource))
        {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    manager: manager.to_owned(),
                    operation: "Update".into(),
                    api_version: api_version.to_owned(),
                    time: None,
                    subresource: subresource.map(str::to_owned),
                    fields: FieldSet::default(),
                });
                entries.len() - 1
            }
        };
        let e = &mut entries[idx];
        e.fields.union(&changed);
        e.fields.subtract(&removed);
        e.api_version = api_version.to_owned();
        e.time = Some(now.to_owned());
    }
    write_entries(new, entries);
}

/// Compares two objects of type `ty`: `changed` gets added and modified paths (with `.` on
/// new maps and list items), `modified` only the changed leaves, `removed` what disappeared.
fn diff_object(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    ty: Option<&'static TypeDef>,
    changed: &mut FieldSet,
    modified: &mut FieldSet,
    removed: &mut FieldSet,
) {
    for (k, nv) in new {
        if nv.is_null() {
            continue;
        }
        let pe = format!("f:{k}");
        let shape = field_shape(ty, k);
        match old.get(k) {
            Some(ov) if !ov.is_null() => diff_field(
                ov,
                nv,
                shape,
                changed.child(&pe),
                modified.child(&pe),
                removed.child(&pe),
            ),
            _ => added(nv, shape, changed.child(&pe)),
        }
    }
    for (k, ov) in old {
        if ov.is_null() || new.get(k).is_some_and(|v| !v.is_null()) {
            continue;
        }
        let node = removed.child(&format!("f:{k}"));
        added(ov, field_shape(ty, k), node);
        node.own = true;
    }
    changed.children.retain(|_, c| !c.is_empty());
    modified.children.retain(|_, c| !c.is_empty());
    removed.children.retain(|_, c| !c.is_empty());
}

/// All paths of a value that did not exist before.
fn added(v: &Value, shape: Shape, node: &mut FieldSet) {
    if collect_field(v, shape, node, true, "").is_err() {
        node.children.clear();
        node.own = true;
    }
}

fn diff_field(
    ov: &Value,
    nv: &Value,
    shape: Shape,
    changed: &mut FieldSet,
    modified: &mut FieldSet,
    removed: &mut FieldSet,
) {
    if ov == nv {
        return;
    }
    match (shape, ov, nv) {
        (Shape::Object(t), Value::Object(o), Value::Object(n))
            if !n.is_empty() && !o.is_empty() =>
        {
            diff_object(o, n, t, changed, modified, removed)
        }
        (Shape::Map, Value::Object(o), Value::Object(n)) if !n.is_empty() && !o.is_empty() => {
            diff_object(o, n, None, changed, modified, removed)
        }
        (
            Shape::List {
                ssa: SsaList::Set, ..
            },
            Value::Array(o),
            Value::Array(n),
        ) if !n.is_empty() && !o.is_empty() => {
            for v in n.iter().filter(|v| !o.contains(v)) {
                changed.child(&format!("v:{v}")).own = true;
            }
            for v in o.iter().filter(|v| !n.contains(v)) {
                removed.child(&format!("v:{v}")).own = true;
            }
        }
        (
            Shape::List {
                ssa: SsaList::Map(keys),
                elem,
                ..
            },
            Value::Array(o),
            Value::Array(n),
        ) if !n.is_empty() && !o.is_empty() => {
            let keyed = |l: &[Value]| -> Option<Vec<(String, Value)>> {
                l.iter()
                    .map(|x| {
                        crate::fieldset::key_element(x, keys)
                            .ok()
                            .map(|k| (k, x.clone()))
                    })
                    .collect()
            };
            let (Some(ok), Some(nk)) = (keyed(o), keyed(n)) else {
                changed.own = true;
                modified.own = true;
                return;
            };
            for (k, item) in &nk {
                match ok.iter().find(|(ko, _)| ko == k) {
                    Some((_, old_item)) => {
                        let (Value::Object(oi), Value::Object(ni)) = (old_item, item) else {
                            continue;
                        };
                        diff_object(
                            oi,
                            ni,
                            elem,
                            changed.child(k),
                            modified.child(k),
                            removed.child(k),
                        );
                    }
                    None => {
                        let node = changed.child(k);
                        node.own = true;
                        if let Value::Object(m) = item {
                            let _ = collect_object(m, elem, node, true, "");
                        }
                    }
                }
            }
            for (k, item) in &ok {
                if nk.iter().any(|(kn, _)| kn == k) {
                    continue;
                }
                let node = removed.child(k);
                node.own = true;
                if let Value::Object(m) = item {
                    let _ = collect_object(m, elem, node, true, "");
                }
            }
        }
        _ => {
            changed.own = true;
            modified.own = true;
        }
    }
    changed.children.retain(|_, c| !c.is_empty());
    modified.children.retain(|_, c| !c.is_empty());
    removed.children.retain(|_, c| !c.is_empty());
}
