//! Namespace, ConfigMap, Secret, Event, Node, Lease and CustomResourceDefinition validation
//! (`pkg/apis/core/validation`, `pkg/apis/coordination/validation`,
//! `apiextensions-apiserver/pkg/apis/apiextensions/validation`).

use super::{Errs, arr_at, get, immutable, int_at, meta, obj_at, push_msgs, str_at};
use crate::field::{FieldError, Path};
use crate::names;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// `core.MaxSecretSize`: the total data of a ConfigMap or Secret (1 MiB).
pub(crate) const MAX_SECRET_SIZE: usize = 1024 * 1024;
/// Finalizer names Kubernetes accepts without a domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

/// `validateKubeFinalizerName`: a finalizer without a `/` must be one of the standard ones.
pub(crate) fn kube_finalizer_name(name: &str, path: &Path, errs: &mut Errs) {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

/// `ValidateNamespace`: spec finalizers are qualified names (standard ones may be bare).
pub(crate) fn namespace(obj: &Value, errs: &mut Errs) {
    let path = Path::new("spec").child("finalizers");
    let empty = Value::Null;
    for f in arr_at(get(obj, "spec").unwrap_or(&empty), "finalizers")
        .iter()
        .filter_map(Value::as_str)
    {
        push_msgs(names::is_qualified_name(f), &path, f, errs);
        kube_finalizer_name(f, &path, errs);
    }
}

/// `data[key]` / `binaryData[key]` keys must be valid file names.
fn config_keys(map: Option<&Map<String, Value>>, path: &Path, errs: &mut Errs) {
    for k in map.map(Map::keys).into_iter().flatten() {
        push_msgs(names::is_config_map_key(k), &path.key(k), k, errs);
    }
}

/// Size of a base64 value once decoded (what Kubernetes counts); the encoded length if it is not base64.
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_or(s.len(), |b| b.len())
}

/// Missing, null and empty maps compare equal (storage drops empty maps).
fn same_map(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| {
        v.filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
            .cloned()
    };
    norm(a) == norm(b)
}

/// The update rule shared by ConfigMaps and Secrets: once `immutable: true`, neither the flag nor the listed
/// data fields may change.
fn immutable_data(obj: &Value, old: Option<&Value>, fields: &[&str], errs: &mut Errs) {
    let Some(old) = old else {
        return;
    };
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if obj.get("immutable") != Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE_SET));
    }
    for f in fields {
        if !same_map(obj.get(*f), old.get(*f)) {
            errs.push(FieldError::forbidden(*f, IMMUTABLE_SET));
        }
    }
}

/// `ValidateConfigMap` and `ValidateConfigMapUpdate`: valid keys, no key in both `data` and `binaryData`,
/// 1 MiB in total, frozen when immutable.
pub(crate) fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    immutable_data(obj, old, &["data", "binaryData"], errs);
    let data = obj_at(obj, "data");
    let binary = obj_at(obj, "binaryData");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        let p = Path::new("data").key(k);
        push_msgs(names::is_config_map_key(k), &p, k, errs);
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(FieldError::invalid(
                &p,
                k.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map_or(0, str::len);
    }
    config_keys(binary, &Path::new("binaryData"), errs);
    total += binary
        .into_iter()
        .flatten()
        .map(|(_, v)| decoded_len(v))
        .sum::<usize>();
    if total > MAX_SECRET_SIZE {
        // Kubernetes reports the whole object with an empty path.
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
}

/// `ValidateSecret` and `ValidateSecretUpdate`: valid keys, 1 MiB, the keys each well-known type requires,
/// immutable `type`, frozen data when immutable.
pub(crate) fn secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    if let Some(old) = old {
        immutable(get(obj, "type"), get(old, "type"), "type", errs);
    }
    immutable_data(obj, old, &["data"], errs);
    let data_path = Path::new("data");
    let data = obj_at(obj, "data");
    config_keys(data, &data_path, errs);
    let total: usize = data
        .into_iter()
        .flatten()
        .map(|(_, v)| decoded_len(v))
        .sum();
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_SECRET_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let required = |k: &str, errs: &mut Errs| errs.push(FieldError::required(data_path.key(k), ""));
    match str_at(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let empty = Value::Null;
            let meta = get(obj, "metadata").unwrap_or(&empty);
            let key = "kubernetes.io/service-account.name";
            if obj_at(meta, "annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(
                    Path::new("metadata").child("annotations").key(key),
                    "",
                ));
            }
        }
        t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if t == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.and_then(|d| d.get(key)) {
                None => required(key, errs),
                Some(v) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap_or_default())
                        .unwrap_or_default();
                    if let Err(e) = serde_json::from_slice::<Map<String, Value>>(&bytes) {
                        // Kubernetes shows the JSON decoder's error and redacts the contents.
                        errs.push(FieldError::invalid(
                            data_path.key(key),
                            "<secret contents redacted>",
                            e.to_string(),
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            required("username", errs);
            required("password", errs);
        }
        "kubernetes.io/ssh-auth" => {
            let empty = data
                .and_then(|d| d.get("ssh-privatekey"))
                .is_none_or(|v| decoded_len(v) == 0);
            if empty {
                required("ssh-privatekey", errs);
            }
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    required(key, errs);
                }
            }
        }
        _ => {}
    }
}

/// `legacyValidateEvent` for core/v1 Events: the involved object's namespace matches the event's, and,
/// for events with `eventTime` (the new style), the reporting fields are present and bounded.
pub(crate) fn event(obj: &Value, errs: &mut Errs) {
    let ns = get(obj, "metadata").map_or("", |m| str_at(m, "namespace"));
    let involved_ns = get(obj, "involvedObject").map_or("", |o| str_at(o, "namespace"));
    let ns_path = Path::new("involvedObject").child("namespace");
    let mismatch = || FieldError::invalid(&ns_path, involved_ns, "does not match event.namespace");
    if get(obj, "eventTime").is_none() {
        if involved_ns.is_empty() {
            // Old clients sent cluster-scoped objects' events to "default".
            if !ns.is_empty() && ns != "default" {
                errs.push(mismatch());
            }
        } else if ns != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        // core/v1 reports the reporting controller under "source", as Kubernetes does for this version.
        let controller = str_at(obj, "reportingComponent");
        if controller.is_empty() {
            errs.push(FieldError::required("source", ""));
        }
        push_msgs(
            names::is_qualified_name(controller),
            &Path::new("source"),
            controller,
            errs,
        );
        for (key, shown, limit, required) in [
            ("reportingInstance", "reportingInstance", 128, true),
            ("action", "action", 128, true),
            ("reason", "reason", 128, true),
            ("message", "message", 1024, false),
        ] {
            let v = str_at(obj, key);
            if required && v.is_empty() {
                errs.push(FieldError::required(shown, ""));
            }
            if v.len() > limit {
                errs.push(FieldError::invalid(
                    shown,
                    "",
                    format!("can have at most {limit} characters"),
                ));
            }
        }
    }
    push_msgs(
        names::is_dns1123_subdomain(ns),
        &Path::new("namespace"),
        ns,
        errs,
    );
}

/// `ValidateNode` / `ValidateNodeUpdate`: taints (reported under `metadata.taints`, as Kubernetes does),
/// pod CIDRs (one per family) that never change once set, and a provider ID that is set only once.
pub(crate) fn node(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = get(obj, "spec").unwrap_or(&empty);
    let tpath = Path::new("metadata").child("taints");
    let mut unique: HashSet<(&str, &str)> = HashSet::new();
    for (i, t) in arr_at(spec, "taints").iter().enumerate() {
        let p = tpath.index(i);
        let key = str_at(t, "key");
        push_msgs(names::is_qualified_name(key), &p.child("key"), key, errs);
        let value = str_at(t, "value");
        let msgs = names::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(p.child("value"), value, msgs.join(";")));
        }
        let effect = str_at(t, "effect");
        match effect {
            "" => errs.push(FieldError::required(p.child("effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(FieldError::not_supported(
                p.child("effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !unique.insert((effect, key)) {
            let mut e = FieldError::duplicate(&p, t.clone());
            e.detail = "taints must be unique by key and effect pair".to_string();
            errs.push(e);
        }
    }
    let cidr_path = Path::new("spec").child("podCIDRs");
    let cidrs: Vec<&str> = arr_at(spec, "podCIDRs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut families = Vec::new();
    for (i, c) in cidrs.iter().enumerate() {
        match parse_cidr(c) {
            Some(v4) => families.push(v4),
            None => errs.push(FieldError::invalid(
                cidr_path.index(i),
                *c,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )),
        }
    }
    if cidrs.len() > 1 && (cidrs.len() > 2 || (families.len() == 2 && families[0] == families[1])) {
        let shown = Value::Array(cidrs.iter().map(|c| Value::from(*c)).collect());
        errs.push(FieldError::invalid(
            &cidr_path,
            shown,
            "may specify no more than one CIDR for each IP family",
        ));
    }
    if let Some(old) = old {
        let old_spec = get(old, "spec").unwrap_or(&empty);
        let old_cidrs: Vec<&str> = arr_at(old_spec, "podCIDRs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let msg = "node updates may not change podCIDR except from \"\" to valid";
        if !old_cidrs.is_empty() {
            if old_cidrs.len() != cidrs.len() {
                errs.push(FieldError::forbidden(&cidr_path, msg));
            } else {
                for (o, n) in old_cidrs.iter().zip(&cidrs) {
                    if o != n {
                        errs.push(FieldError::forbidden(&cidr_path, msg));
                    }
                }
            }
        }
        let old_pid = str_at(old_spec, "providerID");
        if !old_pid.is_empty() && old_pid != str_at(spec, "providerID") {
            errs.push(FieldError::forbidden(
                Path::new("spec").child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
}

/// Parses `addr/prefix`; `Some(true)` for IPv4, `Some(false)` for IPv6.
fn parse_cidr(c: &str) -> Option<bool> {
    let (addr, bits) = c.split_once('/')?;
    let bits: u8 = bits.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) if bits <= 32 => Some(true),
        std::net::IpAddr::V6(_) if bits <= 128 => Some(false),
        _ => None,
    }
}

/// `ValidateLeaseSpec`: positive duration, non-negative transitions, known strategy, and a preferred holder
/// only together with a strategy.
pub(crate) fn lease(obj: &Value, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = get(obj, "spec").unwrap_or(&empty);
    let path = Path::new("spec");
    if let Some(d) = int_at(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            path.child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = int_at(spec, "leaseTransitions").filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            path.child("leaseTransitions"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    let strategy = get(spec, "strategy").and_then(Value::as_str);
    if let Some(s) = strategy {
        if s.contains('/') {
            push_msgs(
                names::is_qualified_name(s),
                &path.child("strategy"),
                s,
                errs,
            );
        } else if s != "OldestEmulationVersion" {
            errs.push(FieldError::not_supported(
                path.child("strategy"),
                s,
                &["OldestEmulationVersion"],
            ));
        }
    }
    let preferred = get(spec, "preferredHolder")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !preferred.is_empty() && strategy.is_none_or(str::is_empty) {
        errs.push(FieldError::forbidden(
            path.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
}

/// CRD metadata: `ValidateObjectMeta` with the name rule `<spec.names.plural>.<spec.group>`.
pub(crate) fn crd_meta(obj: &Value, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let m = get(obj, "metadata").unwrap_or(&empty);
    meta::object_meta(m, Some(false), names::name_is_dns_subdomain, errs);
    let name = str_at(m, "name");
    let spec = get(obj, "spec").unwrap_or(&empty);
    let plural = get(spec, "names").map_or("", |n| str_at(n, "plural"));
    if !name.is_empty() && name != format!("{plural}.{}", str_at(spec, "group")) {
        errs.push(FieldError::invalid(
            Path::new("metadata").child("name"),
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
}

/// `validateCustomResourceDefinitionSpec` (the user-facing part): group, scope, versions (DNS-1035 names,
/// unique, exactly one storage version, a structural schema each), names, conversion; on update, the group
/// and plural (the name) and the scope never change.
pub(crate) fn crd(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = get(obj, "spec").unwrap_or(&empty);
    let path = Path::new("spec");
    let group = str_at(spec, "group");
    if group.is_empty() {
        errs.push(FieldError::required(path.child("group"), ""));
    } else {
        let msgs = names::is_dns1123_subdomain(group);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                path.child("group"),
                group,
                msgs.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                path.child("group"),
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    enum_string(
        str_at(spec, "scope"),
        &path.child("scope"),
        &["Cluster", "Namespaced"],
        errs,
    );
    let versions = arr_at(spec, "versions");
    let vpath = path.child("versions");
    let mut storage = 0;
    let mut seen = HashSet::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let p = vpath.index(i);
        if v.get("storage") == Some(&Value::Bool(true)) {
            storage += 1;
        }
        let name = str_at(v, "name");
        if !seen.insert(name) {
            unique = false;
        }
        let msgs = names::is_dns1035_label(name);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(p.child("name"), name, msgs.join(",")));
        }
        let schema_path = p.child("schema").child("openAPIV3Schema");
        match get(v, "schema").and_then(|s| get(s, "openAPIV3Schema")) {
            None => errs.push(FieldError::required(schema_path, "schemas are required")),
            Some(s) => structural(s, &schema_path, Level::Root, errs),
        }
    }
    if !unique {
        errs.push(FieldError::invalid(
            &vpath,
            Value::Array(versions.to_vec()),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            &vpath,
            Value::Array(versions.to_vec()),
            "must have exactly one version marked as storage version",
        ));
    }
    crd_names(
        get(spec, "names").unwrap_or(&empty),
        &path.child("names"),
        errs,
    );
    if let Some(conv) = get(spec, "conversion") {
        let cpath = path.child("conversion");
        let strategy = str_at(conv, "strategy");
        enum_string(
            strategy,
            &cpath.child("strategy"),
            &["None", "Webhook"],
            errs,
        );
        let webhook = get(conv, "webhook");
        if strategy == "Webhook" && webhook.and_then(|w| get(w, "clientConfig")).is_none() {
            errs.push(FieldError::required(
                cpath.child("webhook").child("clientConfig"),
                "required when strategy is set to Webhook",
            ));
        } else if strategy != "Webhook" && webhook.is_some() {
            errs.push(FieldError::forbidden(
                cpath.child("webhook"),
                "should not be set when strategy is not set to Webhook",
            ));
        }
    }
    if let Some(old) = old {
        let old_spec = get(old, "spec").unwrap_or(&empty);
        immutable(
            get(spec, "scope"),
            get(old_spec, "scope"),
            "spec.scope",
            errs,
        );
        immutable(
            get(spec, "group"),
            get(old_spec, "group"),
            "spec.group",
            errs,
        );
        let plural = |s: &Value| get(s, "names").and_then(|n| get(n, "plural")).cloned();
        immutable(
            plural(spec).as_ref(),
            plural(old_spec).as_ref(),
            "spec.names.plural",
            errs,
        );
    }
}

/// `validateEnumStrings` with `required = true`.
fn enum_string(value: &str, path: &Path, accepted: &[&str], errs: &mut Errs) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !accepted.contains(&value) {
        errs.push(FieldError::not_supported(path, value, accepted));
    }
}

/// Required names (singular and listKind are defaulted from kind) and `ValidateCustomResourceDefinitionNames`.
fn crd_names(n: &Value, path: &Path, errs: &mut Errs) {
    for key in ["plural", "singular", "kind", "listKind"] {
        if str_at(n, key).is_empty() {
            errs.push(FieldError::required(path.child(key), ""));
        }
    }
    for key in ["plural", "singular"] {
        let v = str_at(n, key);
        let msgs = names::is_dns1035_label(v);
        if !v.is_empty() && !msgs.is_empty() {
            errs.push(FieldError::invalid(path.child(key), v, msgs.join(",")));
        }
    }
    for key in ["kind", "listKind"] {
        let v = str_at(n, key);
        let msgs = names::is_dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !msgs.is_empty() {
            errs.push(FieldError::invalid(
                path.child(key),
                v,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                ),
            ));
        }
    }
    for key in ["shortNames", "categories"] {
        for (i, v) in arr_at(n, key).iter().filter_map(Value::as_str).enumerate() {
            let msgs = names::is_dns1035_label(v);
            if !msgs.is_empty() {
                errs.push(FieldError::invalid(
                    path.child(key).index(i),
                    v,
                    msgs.join(","),
                ));
            }
        }
    }
    let kind = str_at(n, "kind");
    if !kind.is_empty() && kind == str_at(n, "listKind") {
        errs.push(FieldError::invalid(
            path.child("listKind"),
            kind,
            "kind and listKind may not be the same",
        ));
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Field,
    Item,
}

/// The structural-schema rules users hit most (`validateStructuralInvariants`/`validateStructuralCompleteness`):
/// every node has a type (unless int-or-string or preserve-unknown-fields), the root is an object, embedded
/// resources are objects, and `properties` and `additionalProperties` exclude each other.
fn structural(s: &Value, path: &Path, level: Level, errs: &mut Errs) {
    let ty = str_at(s, "type");
    let flag = |k: &str| s.get(k) == Some(&Value::Bool(true));
    if flag("x-kubernetes-embedded-resource") && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        if ty.is_empty() {
            errs.push(FieldError::required(path.child("type"), detail));
        } else {
            errs.push(FieldError::invalid(path.child("type"), ty, detail));
        }
    } else if ty.is_empty()
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(path.child("type"), detail));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(
            path.child("type"),
            ty,
            "must be object at the root",
        ));
    }
    let props = obj_at(s, "properties");
    if props.is_some_and(|p| !p.is_empty()) && get(s, "additionalProperties").is_some() {
        errs.push(FieldError::forbidden(
            path.child("additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    for (k, sub) in props.into_iter().flatten() {
        structural(sub, &path.child("properties").key(k), Level::Field, errs);
    }
    if let Some(items) = get(s, "items").filter(|i| i.is_object()) {
        structural(items, &path.child("items"), Level::Item, errs);
    }
    if let Some(ap) = get(s, "additionalProperties").filter(|a| a.is_object()) {
        structural(ap, &path.child("additionalProperties"), Level::Field, errs);
    }
}
