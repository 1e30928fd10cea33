//! Pod and pod-template validation (`ValidatePodSpec`, `ValidatePodUpdate` in `pkg/apis/core/validation`).

use super::meta;
use super::quantity;
use super::{Errs, arr_at, get, int_at, obj_at, push_msgs, str_at};
use crate::field::{FieldError, Path};
use crate::names;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Fields of a running pod's spec users may change, listed as Kubernetes lists them in its error.
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A Pod: its spec on create; on update, also the rule that only images, activeDeadlineSeconds and added
/// tolerations may change.
pub(crate) fn pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = obj.get("spec").unwrap_or(&empty);
    pod_spec(spec, &Path::new("spec"), errs);
    if let Some(old) = old {
        pod_update(spec, old.get("spec").unwrap_or(&empty), errs);
    }
}

/// `ValidatePodTemplateSpec`: template labels and annotations (at `<path>.labels`, as Kubernetes reports
/// them) and the pod spec.
pub(crate) fn pod_template(template: &Value, path: &Path, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let tmeta = template.get("metadata").unwrap_or(&empty);
    meta::labels(obj_at(tmeta, "labels"), &path.child("labels"), errs);
    meta::annotations(
        obj_at(tmeta, "annotations"),
        &path.child("annotations"),
        errs,
    );
    pod_spec(
        template.get("spec").unwrap_or(&empty),
        &path.child("spec"),
        errs,
    );
}

/// `ValidatePodSpec`: the rules users meet most.
pub(crate) fn pod_spec(spec: &Value, path: &Path, errs: &mut Errs) {
    let volumes = volumes(spec, &path.child("volumes"), errs);
    let mut all_names = HashSet::new();
    let mut host_ports = HashSet::new();
    let containers = arr_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(path.child("containers"), ""));
    }
    for (i, c) in containers.iter().enumerate() {
        let p = path.child("containers").index(i);
        container(c, &p, &volumes, &mut all_names, &mut host_ports, errs);
        if get(c, "restartPolicy").is_some() {
            errs.push(FieldError::forbidden(
                p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    for (i, c) in arr_at(spec, "initContainers").iter().enumerate() {
        let p = path.child("initContainers").index(i);
        container(c, &p, &volumes, &mut all_names, &mut host_ports, errs);
        if let Some(rp) = get(c, "restartPolicy")
            .and_then(Value::as_str)
            .filter(|rp| *rp != "Always")
        {
            errs.push(FieldError::not_supported(
                p.child("restartPolicy"),
                rp,
                &["Always"],
            ));
        }
    }
    restart_policy(
        str_at(spec, "restartPolicy"),
        &path.child("restartPolicy"),
        errs,
    );
    match str_at(spec, "dnsPolicy") {
        "" => errs.push(FieldError::required(path.child("dnsPolicy"), "")),
        "None" if get(spec, "dnsConfig").is_none() => errs.push(FieldError::required(
            path.child("dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        )),
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        other => errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    meta::labels(
        obj_at(spec, "nodeSelector"),
        &path.child("nodeSelector"),
        errs,
    );
    for key in ["serviceAccountName", "nodeName"] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            push_msgs(names::is_dns1123_subdomain(v), &path.child(key), v, errs);
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            push_msgs(names::is_dns1123_label(v), &path.child(key), v, errs);
        }
    }
    if let Some(ads) =
        int_at(spec, "activeDeadlineSeconds").filter(|v| !(1..=i64::from(i32::MAX)).contains(v))
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            ads,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    tolerations(
        arr_at(spec, "tolerations"),
        &path.child("tolerations"),
        errs,
    );
}

/// `ValidateRestartPolicy` for a pod spec.
pub(crate) fn restart_policy(rp: &str, path: &Path, errs: &mut Errs) {
    match rp {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(path, "")),
        other => errs.push(FieldError::not_supported(
            path,
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
}

/// Volume names (unique DNS labels); returns the set of names for mount checks.
fn volumes(spec: &Value, path: &Path, errs: &mut Errs) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (i, v) in arr_at(spec, "volumes").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else {
            push_msgs(names::is_dns1123_label(name), &p.child("name"), name, errs);
        }
        if !name.is_empty() && !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        }
        let sources = v.as_object().map_or(0, |m| {
            m.iter()
                .filter(|(k, v)| *k != "name" && !v.is_null())
                .count()
        });
        if sources == 0 {
            errs.push(FieldError::required(&p, "must specify a volume type"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 volume type",
            ));
        }
    }
    seen
}

fn container(
    c: &Value,
    path: &Path,
    volumes: &HashSet<String>,
    all_names: &mut HashSet<String>,
    host_ports: &mut HashSet<String>,
    errs: &mut Errs,
) {
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        push_msgs(
            names::is_dns1123_label(name),
            &path.child("name"),
            name,
            errs,
        );
    }
    if !name.is_empty() && !all_names.insert(name.to_string()) {
        errs.push(FieldError::duplicate(path.child("name"), name));
    }
    let image = str_at(c, "image");
    if image.is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    match str_at(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(path.child("imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    match str_at(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            path.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    ports(c, &path.child("ports"), host_ports, errs);
    for (i, e) in arr_at(c, "env").iter().enumerate() {
        if str_at(e, "name").is_empty() {
            errs.push(FieldError::required(
                path.child("env").index(i).child("name"),
                "",
            ));
        }
    }
    let mut mount_paths = HashSet::new();
    for (i, m) in arr_at(c, "volumeMounts").iter().enumerate() {
        let p = path.child("volumeMounts").index(i);
        let mname = str_at(m, "name");
        if mname.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else if !volumes.contains(mname) {
            errs.push(FieldError::not_found(p.child("name"), mname));
        }
        let mpath = str_at(m, "mountPath");
        if mpath.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        } else if !mount_paths.insert(mpath.to_string()) {
            errs.push(FieldError::invalid(
                p.child("mountPath"),
                mpath,
                "must be unique",
            ));
        }
    }
    resources(c, &path.child("resources"), errs);
}

/// `validateContainerPorts` plus the pod-wide unique host port rule.
fn ports(c: &Value, path: &Path, host_ports: &mut HashSet<String>, errs: &mut Errs) {
    let mut port_names = HashSet::new();
    for (i, port) in arr_at(c, "ports").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let msgs = names::is_valid_port_name(name);
            if !msgs.is_empty() {
                push_msgs(msgs, &p.child("name"), name, errs);
            } else if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            }
        }
        let cp = int_at(port, "containerPort").unwrap_or(0);
        if cp == 0 {
            errs.push(FieldError::required(p.child("containerPort"), ""));
        } else {
            for m in names::is_valid_port_num(cp) {
                errs.push(FieldError::invalid(p.child("containerPort"), cp, m));
            }
        }
        let hp = int_at(port, "hostPort").unwrap_or(0);
        if hp != 0 {
            for m in names::is_valid_port_num(hp) {
                errs.push(FieldError::invalid(p.child("hostPort"), hp, m));
            }
        }
        let proto = str_at(port, "protocol");
        match proto {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errs.push(FieldError::required(p.child("protocol"), "")),
            other => errs.push(FieldError::not_supported(
                p.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
        if hp != 0 {
            let key = format!("{proto}/{}/{hp}", str_at(port, "hostIP"));
            if !host_ports.insert(key.clone()) {
                errs.push(FieldError::duplicate(p.child("hostPort"), key));
            }
        }
    }
}

/// `ValidateResourceRequirements`: valid non-negative quantities and requests within limits.
fn resources(c: &Value, path: &Path, errs: &mut Errs) {
    let Some(res) = get(c, "resources") else {
        return;
    };
    let limits = obj_at(res, "limits");
    for (kind, map) in [("limits", limits), ("requests", obj_at(res, "requests"))] {
        for (name, q) in map.into_iter().flatten() {
            let p = path.child(kind).key(name);
            match quantity::parse(q) {
                None => errs.push(FieldError::invalid(
                    &p,
                    q.clone(),
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )),
                Some(v) if v < 0.0 => {
                    errs.push(FieldError::invalid(&p, q.clone(), "must be greater than or equal to 0"))
                }
                Some(_) => {}
            }
        }
    }
    for (name, req) in obj_at(res, "requests").into_iter().flatten() {
        let Some(lim) = limits.and_then(|l| l.get(name)) else {
            continue;
        };
        let (Some(r), Some(l)) = (quantity::parse(req), quantity::parse(lim)) else {
            continue;
        };
        let shown = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let overcommit =
            matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") || name.contains('/');
        let native = !name.contains('/') || name.starts_with("kubernetes.io/");
        if !overcommit && native && (r - l).abs() > f64::EPSILON {
            // Extended resources such as GPUs cannot be overcommitted: request must equal limit.
            errs.push(FieldError::invalid(
                path.child("requests"),
                shown(req),
                format!("must be equal to {name} limit of {}", shown(lim)),
            ));
        } else if r > l {
            errs.push(FieldError::invalid(
                path.child("requests"),
                shown(req),
                format!(
                    "must be less than or equal to {name} limit of {}",
                    shown(lim)
                ),
            ));
        }
    }
}

fn tolerations(list: &[Value], path: &Path, errs: &mut Errs) {
    for (i, t) in list.iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        if !key.is_empty() {
            push_msgs(names::is_qualified_name(key), &p.child("key"), key, errs);
        }
        match str_at(t, "operator") {
            "" | "Equal" => {}
            "Exists" => {
                let value = str_at(t, "value");
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        let effect = str_at(t, "effect");
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errs.push(FieldError::not_supported(
                p.child("effect"),
                effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
}

/// `ValidatePodUpdate`: a pod's spec is fixed once created, except container images, activeDeadlineSeconds
/// (set, or lowered), added tolerations and a negative grace period becoming 1.
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    let path = Path::new("spec");
    let new_ads = int_at(new, "activeDeadlineSeconds");
    if let Some(old_ads) = int_at(old, "activeDeadlineSeconds") {
        match new_ads {
            None => errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                Value::Null,
                "must not update from a positive integer to nil value",
            )),
            Some(n) if n > old_ads => errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                n,
                "must be less than or equal to previous value",
            )),
            Some(_) => {}
        }
    }
    // Munge the new spec: take every updatable field from the old one, then compare.
    let (Some(new_map), Some(old_map)) = (new.as_object(), old.as_object()) else {
        return;
    };
    let mut munged = new_map.clone();
    for key in ["containers", "initContainers"] {
        let old_list = arr_at(old, key);
        if let Some(Value::Array(list)) = munged.get_mut(key)
            && list.len() == old_list.len()
        {
            for (c, oc) in list.iter_mut().zip(old_list) {
                if let (Some(cm), Some(img)) = (c.as_object_mut(), oc.get("image")) {
                    cm.insert("image".to_string(), img.clone());
                }
            }
        }
    }
    restore(&mut munged, old_map, "activeDeadlineSeconds");
    let old_tolerations = arr_at(old, "tolerations");
    let new_tolerations = arr_at(new, "tolerations");
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        restore(&mut munged, old_map, "tolerations");
    }
    let old_grace = int_at(old, "terminationGracePeriodSeconds");
    if old_grace.is_some_and(|g| g < 0) && int_at(new, "terminationGracePeriodSeconds") == Some(1) {
        restore(&mut munged, old_map, "terminationGracePeriodSeconds");
    }
    if &munged != old_map {
        let mut changed: Vec<&str> = munged
            .keys()
            .chain(old_map.keys())
            .filter(|k| {
                munged.get(*k).filter(|v| !v.is_null()) != old_map.get(*k).filter(|v| !v.is_null())
            })
            .map(String::as_str)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        if changed.is_empty() {
            return;
        }
        let detail: Vec<String> = changed.iter().map(|k| format!("spec.{k}")).collect();
        errs.push(FieldError::forbidden(
            path,
            format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n(changed: {})", detail.join(", ")),
        ));
    }
}

fn restore(munged: &mut Map<String, Value>, old: &Map<String, Value>, key: &str) {
    match old.get(key) {
        Some(v) => {
            munged.insert(key.to_string(), v.clone());
        }
        None => {
            munged.remove(key);
        }
    }
}
