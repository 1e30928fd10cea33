//! create, update, patch and delete: the write pipeline
//! decode → normalize (types, unknown fields) → defaults → system metadata → validate → CAS write.
//! Nothing is written unless every step passed, so a bad request never leaves half an object.

use crate::read::{get_with_revision, scale_of};
use crate::route::Target;
use crate::state::{State, encode, now, store_error};
use api::{ApiError, ResourceInfo, meta};
use serde_json::{Value, json};
use std::sync::Arc;
use store::StoreError;

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject with 400.
    Strict,
    /// Accept, drop, and warn.
    Warn,
    /// Accept and drop silently.
    Ignore,
}

/// Per-request write options.
#[derive(Clone, Debug)]
pub struct WriteOpts {
    /// The field manager recorded in managedFields.
    pub field_manager: String,
    /// `dryRun=All`: validate and answer without storing.
    pub dry_run: bool,
    /// Unknown-field handling.
    pub validation: FieldValidation,
}

/// The outcome of a write: the object and the warnings for the `Warning` header.
pub struct Written {
    /// The stored (or would-be stored) object.
    pub object: Value,
    /// Warnings (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
    /// True when the write created the object (server-side apply of a missing object).
    pub created: bool,
}

/// Options of a delete (DeleteOptions body or query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy`: Foreground, Background or Orphan.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

fn max_retries() -> usize {
    16
}

/// Type-checks the object and handles unknown fields per `fieldValidation`.
fn normalize(
    state: &State,
    info: &ResourceInfo,
    obj: &Value,
    v: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let (object, unknown) = if info.custom {
        let version = state.crd_version(info);
        let schema = version
            .as_ref()
            .and_then(|v| v.get("schema"))
            .and_then(|s| s.get("openAPIV3Schema"))
            .cloned()
            .unwrap_or(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        match admission::normalize_custom(&schema, obj) {
            Ok(n) => (n.object, n.unknown_fields),
            Err(errors) => {
                let name = meta::name(obj).unwrap_or("");
                return Err(invalid(info, name, &errors));
            }
        }
    } else {
        match admission::normalize(&info.group, &info.version, &info.kind, obj) {
            Ok(n) => (n.object, n.unknown_fields),
            Err(e) => return Err(ApiError::bad_request(e.to_string())),
        }
    };
    match v {
        FieldValidation::Strict if !unknown.is_empty() => {
            let list = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            Err(ApiError::bad_request(format!(
                "strict decoding error: {list}"
            )))
        }
        FieldValidation::Warn => Ok((
            object,
            unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect(),
        )),
        _ => Ok((object, Vec::new())),
    }
}

fn invalid(info: &ResourceInfo, name: &str, errors: &[admission::FieldError]) -> ApiError {
    let message = admission::invalid_message(&info.group, &info.kind, name, errors);
    let causes = errors
        .iter()
        .map(|e| api::status::Cause {
            reason: e.reason().to_string(),
            // StatusCause.message is the error without its field path (kubectl prints
            // "field: message").
            message: e.body(),
            field: e.field.clone(),
        })
        .collect();
    ApiError::invalid(&info.group, &info.kind, name, message, causes)
}

fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let errors = if info.custom {
        Vec::new()
    } else {
        admission::validate(&info.group, &info.kind, obj, old)
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(info, meta::name(obj).unwrap_or(""), &errors))
    }
}

/// The object with everything but metadata and status, to tell spec changes (generation).
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Random suffix as Kubernetes' generateName makes it (no vowels, no look-alikes).
fn name_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_type(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != info.kind
        && (k != "Scale")
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the body ({k}) does not match the resource's kind ({}) at this endpoint",
            info.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != info.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    Ok(())
}

/// System-set fields for a new object, and the per-kind initial status.
fn init_new(info: &ResourceInfo, obj: &mut Value) {
    let has_spec = info.custom || obj.get("spec").is_some();
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    let m = meta::metadata_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    // Kinds with a spec (and custom resources) track spec changes in generation.
    if has_spec {
        m.insert("generation".into(), json!(1));
    }
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(f);
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let t = now();
            let storage: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"] == json!(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            obj["status"] = json!({
                "acceptedNames": obj["spec"]["names"].clone(),
                "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
                ],
            });
        }
        _ => {}
    }
}

/// Picks a free cluster IP from the service range for a new Service.
async fn allocate_cluster_ip(
    state: &State,
    info: &ResourceInfo,
    svc: &mut Value,
) -> Result<(), ApiError> {
    let spec = &svc["spec"];
    if spec["type"] == json!("ExternalName") {
        return Ok(());
    }
    let asked = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    if asked == "None" {
        svc["spec"]["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    let page = state
        .store
        .list(&info.key_prefix(), None, None, 0)
        .await
        .map_err(store_error)?;
    let used: std::collections::HashSet<String> = page
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter_map(|s| s["spec"]["clusterIP"].as_str().map(str::to_string))
        .collect();
    let (base, size) = state.service_range;
    let in_range = |ip: &str| {
        ip.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| u32::from(a).wrapping_sub(base) < size)
    };
    if !asked.is_empty() && !in_range(asked) {
        let name = meta::name(svc).unwrap_or("");
        let range = format!(
            "{}/{}",
            std::net::Ipv4Addr::from(base),
            32 - size.trailing_zeros()
        );
        return Err(ApiError::invalid(
            "",
            "Service",
            name,
            format!(
                "Service \"{name}\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{asked}\"}}: failed to allocate IP {asked}: provided IP is not in the valid range. The range of valid IPs is {range}"
            ),
            vec![api::status::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: []string{{\"{asked}\"}}: failed to allocate IP {asked}: provided IP is not in the valid range. The range of valid IPs is {range}"
                ),
                field: "spec.clusterIPs".into(),
            }],
        ));
    }
    if !asked.is_empty() {
        if used.contains(asked) {
            let name = meta::name(svc).unwrap_or("");
            return Err(ApiError::invalid(
                "",
                "Service",
                name,
                format!(
                    "Service \"{name}\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{asked}\"}}: failed to allocate IP {asked}: provided IP is already allocated"
                ),
                vec![],
            ));
        }
        svc["spec"]["clusterIPs"] = json!([asked]);
        return Ok(());
    }
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let n: u32 = rng.random_range(1..size - 1);
        let ip = std::net::Ipv4Addr::from(base + n).to_string();
        if !used.contains(&ip) {
            svc["spec"]["clusterIP"] = json!(ip);
            svc["spec"]["clusterIPs"] = json!([ip]);
            return Ok(());
        }
    }
    Err(ApiError::internal("the service IP range is full"))
}

async fn check_namespace(
    state: &State,
    info: &ResourceInfo,
    ns: Option<&str>,
) -> Result<(), ApiError> {
    let Some(ns) = ns.filter(|_| info.namespaced) else {
        return Ok(());
    };
    match state
        .store
        .get(&format!("/core/namespaces/{ns}"))
        .await
        .map_err(store_error)?
    {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(kv) => {
            let nso: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            if meta::is_deleting(&nso) {
                Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    info.plural, "",
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// POST to a collection.
pub async fn create(
    state: &State,
    t: &Target,
    mut obj: Value,
    opts: &WriteOpts,
) -> Result<Written, ApiError> {
    check_type(&t.info, &obj)?;
    let info = &t.info;
    if info.namespaced {
        let url_ns = t.namespace.clone().unwrap_or_else(|| "default".into());
        match meta::namespace(&obj) {
            Some(ns) if ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => meta::set(&mut obj, "namespace", json!(url_ns)),
        }
    } else {
        meta::remove(&mut obj, "namespace");
    }
    let mut generated = None;
    if meta::name(&obj).is_none() {
        let generate = obj["metadata"]
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if generate.is_empty() {
            let errors = vec![admission::FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )];
            return Err(invalid(info, "", &errors));
        }
        meta::set(
            &mut obj,
            "name",
            json!(format!("{generate}{}", name_suffix())),
        );
        generated = Some(generate);
    }
    let (mut obj, warnings) = normalize(state, info, &obj, opts.validation)?;
    let name = meta::name(&obj).unwrap_or("").to_string();
    if let Err(detail) = admission::validate_name(&info.group, &info.kind, &name) {
        let errors = vec![admission::FieldError::invalid(
            "metadata.name",
            json!(name),
            detail,
        )];
        return Err(invalid(info, &name, &errors));
    }
    check_namespace(state, info, t.namespace.as_deref().or(Some("default")))
        .await
        .map_err(|e| {
            if e.code == 403 {
                ApiError::forbidden(e.message.replace("\"\"", &format!("\"{name}\"")))
            } else {
                e
            }
        })?;
    // System metadata first: some defaults (a Job's selector) derive from the uid.
    init_new(info, &mut obj);
    if !info.custom {
        admission::apply_defaults(&info.group, &info.kind, &mut obj);
    }
    patch::record_update(
        None,
        &mut obj,
        &opts.field_manager,
        None,
        &info.api_version(),
        &now(),
    );
    validate(info, &obj, None)?;
    if info.group.is_empty() && info.kind == "Service" {
        allocate_cluster_ip(state, info, &mut obj).await?;
        crate::nodeport::allocate(state, info, &mut obj).await?;
    }
    store_new(state, t, obj, opts, warnings, generated.as_deref()).await
}

/// Attempts at a free name for `generateName` (Kubernetes' RetryGenerateName): five
/// random characters give 14 million names, so a ReplicaSet of 100,000 pods meets a
/// taken one about once in 140 creations.
const GENERATE_NAME_ATTEMPTS: usize = 8;

/// Writes a fully prepared new object. `generated`: the `generateName` its name was
/// made from; a name already taken is then replaced by another one, not refused.
async fn store_new(
    state: &State,
    t: &Target,
    mut obj: Value,
    opts: &WriteOpts,
    warnings: Vec<String>,
    generated: Option<&str>,
) -> Result<Written, ApiError> {
    let info = &t.info;
    let ns = meta::namespace(&obj).map(str::to_string);
    if opts.dry_run {
        return Ok(Written {
            object: obj,
            warnings,
            created: true,
        });
    }
    let rev = create_named(info, &mut obj, generated, name_suffix, |name, value| {
        let key = info.key(ns.as_deref(), &name);
        async move { state.store.create(&key, value).await }
    })
    .await?;
    meta::set(&mut obj, "resourceVersion", json!(rev.to_string()));
    if info.group == "apiextensions.k8s.io" {
        state.reload_crds().await?;
    }
    Ok(Written {
        object: obj,
        warnings,
        created: true,
    })
}

/// Stores `obj` by `create(name, encoded)`; when the name came from `generated` and is
/// taken, tries again with a new `suffix()` (at most [`GENERATE_NAME_ATTEMPTS`] names).
async fn create_named<F, Fut>(
    info: &ResourceInfo,
    obj: &mut Value,
    generated: Option<&str>,
    mut suffix: impl FnMut() -> String,
    mut create: F,
) -> Result<i64, ApiError>
where
    F: FnMut(String, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<i64, StoreError>>,
{
    let mut attempt = 1;
    loop {
        let name = meta::name(obj).unwrap_or("").to_string();
        match create(name.clone(), encode(obj)?).await {
            Ok(rev) => return Ok(rev),
            Err(StoreError::AlreadyExists { .. }) => match generated {
                Some(prefix) if attempt < GENERATE_NAME_ATTEMPTS => {
                    attempt += 1;
                    meta::set(obj, "name", json!(format!("{prefix}{}", suffix())));
                }
                _ => return Err(ApiError::already_exists(&info.group, &info.plural, &name)),
            },
            Err(e) => return Err(store_error(e)),
        }
    }
}

/// Carries system fields from the stored object into an update, keeps the parts the
/// (sub)resource may not change, and bumps generation on spec changes.
fn prepare_update(
    info: &ResourceInfo,
    old: &Value,
    mut new: Value,
    sub: Option<&str>,
    manager: &str,
) -> Value {
    match sub {
        Some("status") => {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null() {
                merged.as_object_mut().map(|m| m.remove("status"));
            }
            new = merged;
        }
        _ => {
            if info.has_subresource("status") && info.kind != "Namespace"
                || info.kind == "Namespace" && sub.is_none()
            {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
        }
    }
    new["apiVersion"] = json!(info.api_version());
    new["kind"] = json!(info.kind);
    let om = old.get("metadata").cloned().unwrap_or(json!({}));
    let m = meta::metadata_mut(&mut new);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match om.get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    m.remove("selfLink");
    // As Kubernetes' service registry does: an update that leaves the allocated cluster IPs
    // out keeps them.
    if info.group.is_empty() && info.kind == "Service" && new["spec"].is_object() {
        for f in ["clusterIP", "clusterIPs"] {
            if new["spec"].get(f).is_none_or(Value::is_null)
                && let Some(v) = old["spec"].get(f)
            {
                new["spec"][f] = v.clone();
            }
        }
    }
    if spec_part(old) != spec_part(&new) {
        let g = om["generation"].as_i64().unwrap_or(0) + 1;
        meta::set(&mut new, "generation", json!(g));
    }
    // An empty manager means the change is a server-side apply, whose managedFields are
    // already computed: recording it again as an Update would take the applied fields
    // away from the applier's Apply entry.
    if !manager.is_empty() {
        patch::record_update(
            Some(old),
            &mut new,
            manager,
            sub,
            &info.api_version(),
            &now(),
        );
    }
    new
}

/// Writes `new` over the stored object at `rev`; an object being deleted whose last
/// finalizer is gone is deleted instead.
async fn commit_update(
    state: &State,
    t: &Target,
    name: &str,
    new: Value,
    rev: i64,
    opts: &WriteOpts,
) -> Result<Value, StoreOrApi> {
    let info = &t.info;
    let key = info.key(t.namespace.as_deref(), name);
    if opts.dry_run {
        return Ok(new);
    }
    if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
        let kv = state
            .store
            .delete(&key, Some(rev))
            .await
            .map_err(StoreOrApi::Store)?;
        let mut o = new;
        meta::set(
            &mut o,
            "resourceVersion",
            json!(kv.mod_revision.to_string()),
        );
        return Ok(o);
    }
    let new_rev = state
        .store
        .update(&key, encode(&new).map_err(StoreOrApi::Api)?, rev)
        .await
        .map_err(StoreOrApi::Store)?;
    let mut o = new;
    meta::set(&mut o, "resourceVersion", json!(new_rev.to_string()));
    if info.group == "apiextensions.k8s.io" {
        state.reload_crds().await.map_err(StoreOrApi::Api)?;
    }
    Ok(o)
}

enum StoreOrApi {
    Store(StoreError),
    Api(ApiError),
}

/// Reads, changes with `mutate`, validates and writes back with compare-and-swap, retrying
/// on conflicts unless the change itself named a resourceVersion (then a conflict is the
/// client's: 409).
pub async fn update_with<F>(
    state: &State,
    t: &Target,
    name: &str,
    opts: &WriteOpts,
    sub: Option<&str>,
    mut mutate: F,
) -> Result<Written, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let info = &t.info;
    for _ in 0..max_retries() {
        let (current, rev) = get_with_revision(state, t, name).await?;
        let changed = mutate(&current)?;
        check_type(info, &changed)?;
        if let Some(n) = meta::name(&changed)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let pinned = meta::resource_version(&changed).map(str::to_string);
        if let Some(p) = &pinned
            && *p != rev.to_string()
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        if meta::namespace(&changed)
            .is_some_and(|ns| Some(ns) != t.namespace.as_deref() && info.namespaced)
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let (normalized, warnings) = normalize(state, info, &changed, opts.validation)?;
        let mut new = prepare_update(info, &current, normalized, sub, &opts.field_manager);
        if !info.custom && sub.is_none() {
            admission::apply_defaults(&info.group, &info.kind, &mut new);
        }
        if info.group.is_empty() && info.kind == "Service" && sub.is_none() {
            crate::nodeport::carry_over(&current, &mut new);
        }
        // Binding only sets spec.nodeName, which pod-update validation would refuse.
        if sub != Some("binding") {
            validate(info, &new, Some(&current))?;
        }
        if info.group.is_empty() && info.kind == "Service" && sub.is_none() {
            crate::nodeport::allocate(state, info, &mut new).await?;
        }
        // Removing a finalizer is always allowed; adding one to an object being deleted is not.
        match commit_update(state, t, name, new, rev, opts).await {
            Ok(object) => {
                return Ok(Written {
                    object,
                    warnings,
                    created: false,
                });
            }
            Err(StoreOrApi::Store(StoreError::Conflict { .. })) if pinned.is_none() => continue,
            Err(StoreOrApi::Store(StoreError::Conflict { .. })) => {
                return Err(ApiError::stale(&info.group, &info.plural, name));
            }
            Err(StoreOrApi::Store(StoreError::NotFound { .. })) => {
                return Err(ApiError::not_found(&info.group, &info.plural, name));
            }
            Err(StoreOrApi::Store(e)) => return Err(store_error(e)),
            Err(StoreOrApi::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        &info.group,
        &info.plural,
        name,
        "too many concurrent writers; try again",
    ))
}

/// PUT of an object or its status.
pub async fn update(
    state: &State,
    t: &Target,
    name: &str,
    body: Value,
    opts: &WriteOpts,
    sub: Option<&str>,
) -> Result<Written, ApiError> {
    if meta::name(&body).is_none() {
        return Err(ApiError::bad_request(
            "metadata.name is required in the body of an update",
        ));
    }
    update_with(state, t, name, opts, sub, |_current| Ok(body.clone())).await
}

/// PUT or PATCH of `/scale`: the change is made to the Scale view and carried into spec.replicas.
pub async fn update_scale<F>(
    state: &State,
    t: &Target,
    name: &str,
    opts: &WriteOpts,
    mut change: F,
) -> Result<Value, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let info = t.info.clone();
    let mut scale_opts = opts.clone();
    scale_opts.validation = FieldValidation::Ignore;
    let written = update_with(state, t, name, &scale_opts, Some("scale"), |current| {
        let scale = scale_of(&info, current);
        let changed = change(&scale)?;
        let replicas = changed["spec"]["replicas"].as_i64().ok_or_else(|| {
            ApiError::bad_request("the Scale object must set spec.replicas to an integer")
        })?;
        if replicas < 0 {
            let errors = vec![admission::FieldError::invalid(
                "spec.replicas",
                json!(replicas),
                "must be greater than or equal to 0",
            )];
            return Err(invalid(&info, name, &errors));
        }
        let mut out = current.clone();
        out["spec"]["replicas"] = json!(replicas);
        if let Some(rv) = meta::resource_version(&changed) {
            meta::set(&mut out, "resourceVersion", json!(rv));
        }
        Ok(out)
    })
    .await?;
    Ok(scale_of(&t.info, &written.object))
}

/// Which patch format a PATCH carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 6902.
    Json,
    /// RFC 7386.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

impl PatchKind {
    /// From the Content-Type of a PATCH.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

fn apply_patch(
    info: &ResourceInfo,
    kind: PatchKind,
    current: &Value,
    p: &Value,
) -> Result<Value, ApiError> {
    let r = match kind {
        PatchKind::Json => patch::json_patch(current, p),
        PatchKind::Merge => patch::merge_patch(current, p),
        PatchKind::Strategic => {
            if !patch::supports_strategic(&info.api_version(), &info.kind) {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            patch::strategic_merge(current, p, &info.api_version(), &info.kind)
        }
        PatchKind::Apply => unreachable!("apply is handled by apply()"),
    };
    // Kubernetes: a body that does not decode as a JSON patch is 400; an operation that
    // cannot be applied is 422.
    r.map_err(|e| match kind {
        PatchKind::Json if !matches!(e, patch::PatchError::InvalidJsonPatch(_)) => {
            ApiError::new(422, "Invalid", e.to_string())
        }
        _ => ApiError::bad_request(e.to_string()),
    })
}

/// PATCH of an object, its status or its scale.
#[allow(clippy::too_many_arguments)] // the PATCH request's parts, passed through as they came
pub async fn patch(
    state: &State,
    t: &Target,
    name: &str,
    kind: PatchKind,
    p: Value,
    opts: &WriteOpts,
    sub: Option<&str>,
    force: bool,
) -> Result<Written, ApiError> {
    let info = t.info.clone();
    if kind == PatchKind::Apply {
        return apply(state, t, name, p, opts, force, sub).await;
    }
    if sub == Some("scale") {
        let object = update_scale(state, t, name, opts, |scale| {
            apply_patch(&info, kind, scale, &p)
        })
        .await?;
        return Ok(Written {
            object,
            warnings: vec![],
            created: false,
        });
    }
    update_with(state, t, name, opts, sub, |current| {
        apply_patch(&info, kind, current, &p)
    })
    .await
}

fn apply_error(info: &ResourceInfo, name: &str, e: patch::ApplyError) -> ApiError {
    match e {
        patch::ApplyError::Conflicts(cs) => {
            let mut err = ApiError::conflict(&info.group, &info.plural, name, "");
            err.message = patch::ApplyError::Conflicts(cs.clone()).to_string();
            err.details.causes = cs
                .iter()
                .map(|c| api::status::Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with {}", c.manager_display()),
                    field: c.field.clone(),
                })
                .collect();
            err
        }
        patch::ApplyError::Invalid(m) => ApiError::bad_request(m),
    }
}

/// Server-side apply: creates the object when it is missing.
async fn apply(
    state: &State,
    t: &Target,
    name: &str,
    applied: Value,
    opts: &WriteOpts,
    force: bool,
    sub: Option<&str>,
) -> Result<Written, ApiError> {
    let info = t.info.clone();
    if opts.field_manager.is_empty() || opts.field_manager == "unknown" {
        return Err(ApiError::invalid("meta.k8s.io", "PatchOptions", "", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(), vec![]));
    }
    check_type(&info, &applied)?;
    let now_s = now();
    let av = info.api_version();
    match get_with_revision(state, t, name).await {
        Err(e) if e.code == 404 && sub.is_none() => {
            let req = patch::ApplyRequest {
                live: None,
                applied: &applied,
                manager: &opts.field_manager,
                force,
                api_version: &av,
                kind: &info.kind,
                now: &now_s,
            };
            let mut obj =
                patch::server_side_apply(&req).map_err(|e| apply_error(&info, name, e))?;
            meta::set(&mut obj, "name", json!(name));
            create_prepared(state, t, obj, opts).await
        }
        Err(e) => Err(e),
        Ok(_) => {
            let mut opts2 = opts.clone();
            opts2.field_manager = String::new();
            update_with(state, t, name, &opts2, sub, |current| {
                let req = patch::ApplyRequest {
                    live: Some(current),
                    applied: &applied,
                    manager: &opts.field_manager,
                    force,
                    api_version: &av,
                    kind: &info.kind,
                    now: &now_s,
                };
                let mut out = match patch::server_side_apply(&req) {
                    Ok(o) => o,
                    Err(patch::ApplyError::Conflicts(cs)) => {
                        upgrade_from_client_side_apply(current, &req, &cs)
                            .ok_or(patch::ApplyError::Conflicts(cs))
                            .and_then(|r| r)
                            .map_err(|e| apply_error(&info, name, e))?
                    }
                    Err(e) => return Err(apply_error(&info, name, e)),
                };
                // The apply result must not pin a resourceVersion the client did not send.
                if meta::resource_version(&applied).is_none() {
                    meta::set(
                        &mut out,
                        "resourceVersion",
                        json!(meta::resource_version(current).unwrap_or("")),
                    );
                }
                Ok(out)
            })
            .await
        }
    }
}

/// The first server-side apply of an object that `kubectl apply` managed client-side takes
/// over the fields of its last-applied configuration without conflicts, as Kubernetes'
/// last-applied manager does: when every conflict is with the client-side apply manager and
/// the object carries a last-applied annotation, the apply is forced. None when this does
/// not apply.
fn upgrade_from_client_side_apply(
    live: &Value,
    req: &patch::ApplyRequest<'_>,
    conflicts: &[patch::Conflict],
) -> Option<Result<Value, patch::ApplyError>> {
    live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str()?;
    let already_applies = live["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|m| {
            m.iter()
                .any(|e| e["manager"] == json!(req.manager) && e["operation"] == json!("Apply"))
        });
    if already_applies
        || !conflicts
            .iter()
            .all(|c| c.manager == "kubectl-client-side-apply")
    {
        return None;
    }
    Some(patch::server_side_apply(&patch::ApplyRequest {
        force: true,
        ..*req
    }))
}

/// Create for server-side apply: the managedFields the apply computed are kept.
async fn create_prepared(
    state: &State,
    t: &Target,
    obj: Value,
    opts: &WriteOpts,
) -> Result<Written, ApiError> {
    let managed = obj["metadata"].get("managedFields").cloned();
    let mut w = create(state, t, obj, opts).await?;
    if let (Some(m), false) = (managed, opts.dry_run) {
        // Re-write with the apply's managedFields (create recorded an Update entry).
        let name = meta::name(&w.object).unwrap_or("").to_string();
        let rev: i64 = meta::resource_version(&w.object)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let mut o = w.object.clone();
        meta::set(&mut o, "managedFields", m);
        if let Ok(o2) = commit_update(state, t, &name, o, rev, opts).await {
            w.object = o2;
        }
    }
    Ok(w)
}

/// POST pods/{name}/binding: assigns the pod to a node, once.
pub async fn bind(
    state: &State,
    t: &Target,
    name: &str,
    binding: &Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let node = binding["target"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                name,
                format!("Binding \"{name}\" is invalid: target.name: Required value"),
                vec![],
            )
        })?
        .to_string();
    update_with(state, t, name, opts, Some("binding"), |current| {
        if let Some(n) = current["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict("", "pods", name, &format!("pod {name} is already assigned to node {n:?}")));
        }
        if meta::is_deleting(current) {
            return Err(ApiError::conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host"));
        }
        let mut p = current.clone();
        p["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()});
        let mut conds: Vec<Value> = p["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conds.retain(|c| c["type"] != json!("PodScheduled"));
        conds.push(cond);
        p["status"]["conditions"] = Value::Array(conds);
        Ok(p)
    })
    .await?;
    Ok(api::status::success(None))
}

fn precondition_failed(
    info: &ResourceInfo,
    name: &str,
    what: &str,
    want: &str,
    have: &str,
) -> ApiError {
    ApiError::conflict(
        &info.group,
        &info.plural,
        name,
        &format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
        ),
    )
}

/// DELETE of one object, honouring preconditions, finalizers and the propagation policy.
pub async fn delete(
    state: &Arc<State>,
    t: &Target,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Value, ApiError> {
    let info = &t.info;
    let key = info.key(t.namespace.as_deref(), name);
    for _ in 0..max_retries() {
        let (current, rev) = get_with_revision(state, t, name).await?;
        if let Some(uid) = &opts.uid {
            let have = meta::uid(&current).unwrap_or("");
            if uid != have {
                return Err(precondition_failed(info, name, "UID", uid, have));
            }
        }
        if let Some(rv) = &opts.resource_version
            && *rv != rev.to_string()
        {
            return Err(precondition_failed(
                info,
                name,
                "ResourceVersion",
                rv,
                &rev.to_string(),
            ));
        }
        if opts.dry_run {
            return Ok(current);
        }
        let policy = opts
            .propagation
            .clone()
            .unwrap_or_else(|| "Background".into());
        if !["Background", "Foreground", "Orphan"].contains(&policy.as_str()) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                vec![],
            ));
        }
        // Pods on a node stop gracefully: the object stays, marked, until the node's
        // agent has stopped the containers and deletes it with grace 0 (kubelet protocol).
        if info.group.is_empty() && info.kind == "Pod" {
            let grace = opts
                .grace
                .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30)
                .max(0);
            let bound = current["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            let terminal = matches!(
                current["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
            if grace > 0 && bound && !terminal {
                let old_grace = current["metadata"]["deletionGracePeriodSeconds"].as_i64();
                if meta::is_deleting(&current) && old_grace.is_some_and(|g| g <= grace) {
                    return Ok(current);
                }
                let mut o = current.clone();
                let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
                let at = at
                    .replace_nanosecond(0)
                    .unwrap_or(at)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| now());
                meta::set(&mut o, "deletionTimestamp", json!(at));
                meta::set(&mut o, "deletionGracePeriodSeconds", json!(grace));
                match state.store.update(&key, encode(&o)?, rev).await {
                    Ok(r) => {
                        meta::set(&mut o, "resourceVersion", json!(r.to_string()));
                        return Ok(o);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_error(e)),
                }
            }
        }
        let mut finalizers = meta::finalizers(&current);
        let is_namespace = info.group.is_empty() && info.kind == "Namespace";
        if is_namespace {
            finalizers.retain(|f| f != "kubernetes");
        }
        let extra = match policy.as_str() {
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            _ => None,
        };
        if let Some(f) = extra
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_string());
        }
        if is_namespace || !finalizers.is_empty() {
            if meta::is_deleting(&current) && extra.is_none() {
                return Ok(current);
            }
            let mut o = current.clone();
            if !meta::is_deleting(&o) {
                meta::set(&mut o, "deletionTimestamp", json!(now()));
                meta::set(
                    &mut o,
                    "deletionGracePeriodSeconds",
                    json!(opts.grace.unwrap_or(0)),
                );
            }
            if is_namespace {
                o["status"]["phase"] = json!("Terminating");
                let mut fs = meta::finalizers(&current);
                if let Some(f) = extra
                    && !fs.iter().any(|x| x == f)
                {
                    fs.push(f.into());
                }
                if !fs.is_empty() {
                    meta::set(&mut o, "finalizers", json!(fs));
                }
            } else {
                meta::set(&mut o, "finalizers", json!(finalizers));
            }
            match state.store.update(&key, encode(&o)?, rev).await {
                Ok(r) => {
                    meta::set(&mut o, "resourceVersion", json!(r.to_string()));
                    crate::gc::after_mark(state.clone(), t.clone(), o.clone());
                    return Ok(o);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        match state.store.delete(&key, Some(rev)).await {
            Ok(kv) => {
                let mut o = current;
                meta::set(
                    &mut o,
                    "resourceVersion",
                    json!(kv.mod_revision.to_string()),
                );
                if info.group == "apiextensions.k8s.io" {
                    crate::gc::purge_custom_resources(state, &o).await?;
                    state.reload_crds().await?;
                }
                crate::gc::after_delete(state.clone(), t.clone(), o.clone(), policy == "Orphan");
                return Ok(o);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::not_found(&info.group, &info.plural, name));
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ApiError::conflict(
        &info.group,
        &info.plural,
        name,
        "too many concurrent writers; try again",
    ))
}

/// Evictions are decided one at a time, so two concurrent ones (kubectl drain evicts
/// in parallel) never both spend the last disruption a budget allows.
static EVICTIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// `intOrString` of a budget against `expected` pods (percentages round up, as Kubernetes).
fn budget_count(v: &Value, expected: usize) -> Option<usize> {
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).ok();
    }
    let pct: usize = v.as_str()?.strip_suffix('%')?.parse().ok()?;
    Some((expected * pct).div_ceil(100))
}

/// Refuses (429 TooManyRequests) an eviction that would take a healthy pod below what a
/// PodDisruptionBudget selecting it requires.
async fn check_budgets(state: &Arc<State>, t: &Target, pod: &Value) -> Result<(), ApiError> {
    let registry = state.registry();
    let Some(pdb_info) = registry.find("policy", "v1", "poddisruptionbudgets") else {
        return Ok(());
    };
    let scope = |info: &ResourceInfo| Target {
        info: info.clone(),
        namespace: t.namespace.clone(),
        name: None,
        sub: None,
    };
    let none = std::collections::HashMap::new();
    let (pdbs, _, _) = crate::read::list_objects(state, &scope(pdb_info), &none).await?;
    let empty = serde_json::Map::new();
    let labels = pod["metadata"]["labels"].as_object().unwrap_or(&empty);
    let mut pods: Option<Vec<Value>> = None;
    for pdb in pdbs {
        let Ok(selector) = labels::LabelSelector::from_json(&pdb["spec"]["selector"]) else {
            continue;
        };
        if !selector.matches(labels) {
            continue;
        }
        if pods.is_none() {
            pods = Some(
                crate::read::list_objects(state, &scope(&t.info), &none)
                    .await?
                    .0,
            );
        }
        let matching: Vec<&Value> = pods
            .iter()
            .flatten()
            .filter(|p| selector.matches(p["metadata"]["labels"].as_object().unwrap_or(&empty)))
            .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
            .collect();
        let expected = matching.len();
        let healthy = matching
            .iter()
            .filter(|p| pod_ready(p) && !meta::is_deleting(p))
            .count();
        let desired = if let Some(min) = budget_count(&pdb["spec"]["minAvailable"], expected) {
            min
        } else if let Some(max) = budget_count(&pdb["spec"]["maxUnavailable"], expected) {
            expected.saturating_sub(max)
        } else {
            continue;
        };
        // An unhealthy pod may go as long as the application is not already disrupted.
        let allowed = if pod_ready(pod) {
            healthy > desired
        } else {
            healthy >= desired
        };
        if !allowed {
            let name = meta::name(&pdb).unwrap_or("");
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            e.details.causes.push(api::status::Cause {
                reason: "DisruptionBudget".into(),
                message: format!(
                    "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
                ),
                field: String::new(),
            });
            return Err(e);
        }
    }
    Ok(())
}

/// POST pods/NAME/eviction: a delete that PodDisruptionBudgets may refuse.
pub async fn evict(
    state: &Arc<State>,
    t: &Target,
    name: &str,
    opts: &DeleteOpts,
) -> Result<(), ApiError> {
    let _one = EVICTIONS.lock().await;
    let pod = crate::read::get_object(state, t, name).await?;
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !meta::is_deleting(&pod) && !terminal {
        check_budgets(state, t, &pod).await?;
    }
    delete(state, t, name, opts).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn pods() -> ResourceInfo {
        api::registry::builtins()
            .into_iter()
            .find(|r| r.plural == "pods" && r.group.is_empty())
            .expect("pods are built in")
    }

    /// A store where `taken` names exist; records every name tried.
    async fn try_create(
        taken: &[&str],
        tried: &RefCell<Vec<String>>,
        name: String,
    ) -> Result<i64, StoreError> {
        tried.borrow_mut().push(name.clone());
        if taken.contains(&name.as_str()) {
            Err(StoreError::AlreadyExists { key: name })
        } else {
            Ok(7)
        }
    }

    #[tokio::test]
    async fn a_generated_name_that_is_taken_is_replaced() {
        let info = pods();
        let taken = ["web-aaaaa", "web-bbbbb"];
        let tried = RefCell::new(Vec::new());
        let mut next = ["bbbbb", "ccccc"].into_iter().map(String::from);
        let mut obj = json!({"metadata": {"name": "web-aaaaa", "generateName": "web-"}});
        let rev = create_named(
            &info,
            &mut obj,
            Some("web-"),
            || next.next().unwrap_or_default(),
            |name, _| try_create(&taken, &tried, name),
        )
        .await
        .expect("a free name is found");
        assert_eq!(rev, 7);
        assert_eq!(obj["metadata"]["name"], "web-ccccc");
        assert_eq!(*tried.borrow(), ["web-aaaaa", "web-bbbbb", "web-ccccc"]);
    }

    #[tokio::test]
    async fn a_chosen_name_that_is_taken_is_a_conflict_and_retries_are_bounded() {
        let info = pods();
        let tried = RefCell::new(Vec::new());
        let mut obj = json!({"metadata": {"name": "web"}});
        let err = create_named(
            &info,
            &mut obj,
            None,
            || "zzzzz".to_string(),
            |name, _| try_create(&["web"], &tried, name),
        )
        .await
        .expect_err("the name is taken");
        assert_eq!(err.code, 409);
        assert_eq!(tried.borrow().len(), 1);

        let tried = RefCell::new(Vec::new());
        let mut obj = json!({"metadata": {"name": "web-zzzzz"}});
        let err = create_named(
            &info,
            &mut obj,
            Some("web-"),
            || "zzzzz".to_string(),
            |name, _| try_create(&["web-zzzzz"], &tried, name),
        )
        .await
        .expect_err("every generated name is taken");
        assert_eq!(err.code, 409);
        assert_eq!(tried.borrow().len(), GENERATE_NAME_ATTEMPTS);
    }
}
