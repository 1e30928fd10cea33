//! Controllers: Deployment, ReplicaSet, DaemonSet, StatefulSet, ReplicationController, Job, CronJob, HPA
//! (`pkg/apis/apps/validation`, `pkg/apis/batch/validation`, `pkg/apis/autoscaling/validation`).

use super::meta::{self, selector_is_empty, selector_matches};
use super::pod;
use super::{Errs, get, immutable, int_at, nonneg, obj_at, str_at};
use crate::field::{FieldError, Path};
use crate::names;
use serde_json::{Map, Value};

fn spec_of(obj: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    obj.get("spec").unwrap_or(&EMPTY)
}

fn template_labels(template: Option<&Value>) -> Option<&Map<String, Value>> {
    template
        .and_then(|t| t.get("metadata"))
        .and_then(|m| obj_at(m, "labels"))
}

fn template_labels_value(template: Option<&Value>) -> Value {
    template_labels(template).map_or(Value::Object(Map::new()), |m| Value::Object(m.clone()))
}

/// `selector` required, valid and non-empty (the Deployment/ReplicaSet/StatefulSet form).
fn required_selector(spec: &Value, path: &Path, what: &str, errs: &mut Errs) {
    match get(spec, "selector") {
        None => errs.push(FieldError::required(path.child("selector"), "")),
        Some(sel) => {
            meta::label_selector(sel, &path.child("selector"), errs);
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    path.child("selector"),
                    sel.clone(),
                    format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
}

/// `ValidatePodTemplateSpecForReplicaSet` and its siblings: the template is required, matched by the
/// selector (unless the selector is empty, which selects everything), restarts Always and has no deadline.
fn controller_template(spec: &Value, path: &Path, owner: &str, errs: &mut Errs) {
    let tpath = path.child("template");
    let Some(template) = get(spec, "template") else {
        errs.push(FieldError::required(tpath, ""));
        return;
    };
    let sel = get(spec, "selector");
    if !sel.is_some_and(selector_is_empty)
        && !selector_matches(sel, template_labels(Some(template)))
    {
        errs.push(FieldError::invalid(
            tpath.child("metadata").child("labels"),
            template_labels_value(Some(template)),
            "`selector` does not match template `labels`",
        ));
    }
    pod::pod_template(template, &tpath, errs);
    let tspec = template.get("spec").unwrap_or(&Value::Null);
    let rp = str_at(tspec, "restartPolicy");
    if rp != "Always" && !rp.is_empty() {
        errs.push(FieldError::not_supported(
            tpath.child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if get(tspec, "activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            tpath.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

/// `ValidatePositiveIntOrPercent` (+ not more than 100% when `cap100`).
fn int_or_percent(v: Option<&Value>, path: &Path, cap100: bool, errs: &mut Errs) {
    match v {
        Some(Value::String(s)) => {
            let msgs = names::is_valid_percent(s);
            if msgs.is_empty() {
                let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
                if cap100 && pct > 100 {
                    errs.push(FieldError::invalid(
                        path,
                        s.as_str(),
                        "must not be greater than 100%",
                    ));
                }
            }
            for m in msgs {
                errs.push(FieldError::invalid(path, s.as_str(), m));
            }
        }
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64().filter(|i| *i < 0) {
                errs.push(FieldError::invalid(
                    path,
                    i,
                    "must be greater than or equal to 0",
                ));
            }
        }
        _ => {}
    }
}

fn is_zero(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s == "0%" || s == "0",
        Some(_) => false,
    }
}

fn rolling_update(ru: &Value, path: &Path, errs: &mut Errs) {
    let mu = get(ru, "maxUnavailable");
    let ms = get(ru, "maxSurge");
    int_or_percent(mu, &path.child("maxUnavailable"), true, errs);
    int_or_percent(ms, &path.child("maxSurge"), false, errs);
    if is_zero(mu) && is_zero(ms) {
        errs.push(FieldError::invalid(
            path.child("maxUnavailable"),
            mu.cloned().unwrap_or(Value::from(0)),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

/// `spec.selector` may not change after creation in apps/v1.
fn selector_immutable(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    if let Some(old) = old {
        immutable(
            get(spec_of(obj), "selector"),
            get(spec_of(old), "selector"),
            "spec.selector",
            errs,
        );
    }
}

/// `ValidateDeployment` (+ immutable selector on update).
pub(crate) fn deployment(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    nonneg(spec, "replicas", &path, errs);
    required_selector(spec, &path, "deployment", errs);
    controller_template(spec, &path, "Deployment", errs);
    if let Some(strategy) = get(spec, "strategy") {
        let sp = path.child("strategy");
        match str_at(strategy, "type") {
            "Recreate" => {
                if get(strategy, "rollingUpdate").is_some() {
                    errs.push(FieldError::forbidden(
                        sp.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match get(strategy, "rollingUpdate") {
                None => errs.push(FieldError::required(
                    sp.child("rollingUpdate"),
                    "this should be defaulted and never be nil",
                )),
                Some(ru) => rolling_update(ru, &sp.child("rollingUpdate"), errs),
            },
            other => errs.push(FieldError::not_supported(
                &sp,
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    nonneg(spec, "revisionHistoryLimit", &path, errs);
    nonneg(spec, "minReadySeconds", &path, errs);
    if let Some(pds) = int_at(spec, "progressDeadlineSeconds") {
        if pds < 0 {
            errs.push(FieldError::invalid(
                path.child("progressDeadlineSeconds"),
                pds,
                "must be greater than or equal to 0",
            ));
        } else if pds <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                path.child("progressDeadlineSeconds"),
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(obj, old, errs);
}

/// `ValidateReplicaSet` (+ immutable selector on update).
pub(crate) fn replica_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    nonneg(spec, "replicas", &path, errs);
    nonneg(spec, "minReadySeconds", &path, errs);
    required_selector(spec, &path, "deployment", errs);
    controller_template(spec, &path, "ReplicaSet", errs);
    selector_immutable(obj, old, errs);
}

/// `ValidateDaemonSet` (+ immutable selector on update).
pub(crate) fn daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    match get(spec, "selector") {
        None => errs.push(FieldError::required(path.child("selector"), "")),
        Some(sel) => {
            meta::label_selector(sel, &path.child("selector"), errs);
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    path.child("selector"),
                    sel.clone(),
                    "empty selector is invalid for daemonset",
                ));
            }
        }
    }
    controller_template(spec, &path, "DaemonSet", errs);
    nonneg(spec, "minReadySeconds", &path, errs);
    nonneg(spec, "revisionHistoryLimit", &path, errs);
    if let Some(us) = get(spec, "updateStrategy") {
        let up = path.child("updateStrategy");
        match str_at(us, "type") {
            "OnDelete" => {}
            "RollingUpdate" => {
                if let Some(ru) = get(us, "rollingUpdate") {
                    rolling_update(ru, &up.child("rollingUpdate"), errs);
                }
            }
            other => errs.push(FieldError::not_supported(
                up.child("type"),
                other,
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
    selector_immutable(obj, old, errs);
}

/// StatefulSet spec fields Kubernetes lets users change.
const STS_UPDATABLE: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// `ValidateStatefulSet`; on update everything but the fields above is frozen.
pub(crate) fn stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required(path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = get(spec, "updateStrategy").unwrap_or(&Value::Null);
    match str_at(us, "type") {
        "" => errs.push(FieldError::required(path.child("updateStrategy"), "")),
        "OnDelete" => {
            if let Some(ru) = get(us, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    path.child("updateStrategy").child("rollingUpdate"),
                    ru.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = get(us, "rollingUpdate") {
                nonneg(
                    ru,
                    "partition",
                    &path.child("updateStrategy").child("rollingUpdate"),
                    errs,
                );
            }
        }
        _ => errs.push(FieldError::invalid(
            path.child("updateStrategy"),
            us.clone(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    nonneg(spec, "replicas", &path, errs);
    nonneg(spec, "minReadySeconds", &path, errs);
    if let Some(ordinals) = get(spec, "ordinals") {
        nonneg(ordinals, "start", &path.child("ordinals"), errs);
    }
    required_selector(spec, &path, "statefulset", errs);
    controller_template(spec, &path, "StatefulSet", errs);
    if let Some(old) = old {
        let (Some(n), Some(o)) = (spec.as_object(), spec_of(old).as_object()) else {
            return;
        };
        let frozen_changed = n
            .keys()
            .chain(o.keys())
            .filter(|k| !STS_UPDATABLE.contains(&k.as_str()))
            .any(|k| n.get(k).filter(|v| !v.is_null()) != o.get(k).filter(|v| !v.is_null()));
        if frozen_changed {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

/// `ValidateReplicationController`: a label-map selector, required and matching the template.
pub(crate) fn replication_controller(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    nonneg(spec, "replicas", &path, errs);
    nonneg(spec, "minReadySeconds", &path, errs);
    let selector = obj_at(spec, "selector").filter(|m| !m.is_empty());
    match selector {
        None => errs.push(FieldError::required(path.child("selector"), "")),
        Some(sel) => meta::labels(Some(sel), &path.child("selector"), errs),
    }
    let tpath = path.child("template");
    let Some(template) = get(spec, "template") else {
        errs.push(FieldError::required(tpath, ""));
        return;
    };
    if let Some(sel) = selector {
        let labels = template_labels(Some(template));
        let matches = sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            errs.push(FieldError::invalid(
                tpath.child("metadata").child("labels"),
                template_labels_value(Some(template)),
                "`selector` does not match template `labels`",
            ));
        }
    }
    pod::pod_template(template, &tpath, errs);
    let tspec = template.get("spec").unwrap_or(&Value::Null);
    let rp = str_at(tspec, "restartPolicy");
    if rp != "Always" && !rp.is_empty() {
        errs.push(FieldError::not_supported(
            tpath.child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if get(tspec, "activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            tpath.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
}

/// `validateJobSpec`, shared by Jobs and CronJob job templates.
fn job_spec(spec: &Value, path: &Path, errs: &mut Errs) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonneg(spec, key, path, errs);
    }
    match str_at(spec, "completionMode") {
        "" | "NonIndexed" => {}
        "Indexed" => {
            if int_at(spec, "completions").is_none() {
                errs.push(FieldError::required(
                    path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            path.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    let tpath = path.child("template");
    let template = get(spec, "template").unwrap_or(&Value::Null);
    pod::pod_template(template, &tpath, errs);
    let rp_path = tpath.child("spec").child("restartPolicy");
    // Defaulting turns a missing restartPolicy into Always, so Kubernetes reports Always as missing.
    match str_at(
        template.get("spec").unwrap_or(&Value::Null),
        "restartPolicy",
    ) {
        "" | "Always" => errs.push(FieldError::required(
            rp_path,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            rp_path,
            other,
            &["OnFailure", "Never"],
        )),
    }
}

/// `ValidateJob`; on update the selector, template and completions are frozen.
pub(crate) fn job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    match get(spec, "selector") {
        None => errs.push(FieldError::required(path.child("selector"), "")),
        Some(sel) => meta::label_selector(sel, &path.child("selector"), errs),
    }
    let template = get(spec, "template");
    if let Some(sel) = get(spec, "selector")
        && !selector_matches(Some(sel), template_labels(template))
    {
        errs.push(FieldError::invalid(
            path.child("template").child("metadata").child("labels"),
            template_labels_value(template),
            "`selector` does not match template `labels`",
        ));
    }
    job_spec(spec, &path, errs);
    if let Some(old) = old {
        let ospec = spec_of(old);
        immutable(
            get(spec, "selector"),
            get(ospec, "selector"),
            "spec.selector",
            errs,
        );
        immutable(
            get(spec, "template"),
            get(ospec, "template"),
            "spec.template",
            errs,
        );
        if str_at(spec, "completionMode") != "Indexed" {
            immutable(
                get(spec, "completions"),
                get(ospec, "completions"),
                "spec.completions",
                errs,
            );
        }
    }
}

/// `ValidateCronJob`: name length, schedule, concurrency policy, job template.
pub(crate) fn cron_job(obj: &Value, errs: &mut Errs) {
    let name = obj
        .get("metadata")
        .map(|m| str_at(m, "name"))
        .unwrap_or_default();
    // Jobs get the CronJob name plus an 11-character suffix and must stay a 63-character label.
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let spec = spec_of(obj);
    let path = Path::new("spec");
    let schedule = str_at(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required(path.child("schedule"), ""));
    } else if let Err(msg) = crate::validate::workloads::cron::parse_standard(schedule) {
        errs.push(FieldError::invalid(path.child("schedule"), schedule, msg));
    }
    nonneg(spec, "startingDeadlineSeconds", &path, errs);
    match str_at(spec, "concurrencyPolicy") {
        "" => errs.push(FieldError::required(path.child("concurrencyPolicy"), "")),
        "Allow" | "Forbid" | "Replace" => {}
        other => errs.push(FieldError::not_supported(
            path.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    nonneg(spec, "successfulJobsHistoryLimit", &path, errs);
    nonneg(spec, "failedJobsHistoryLimit", &path, errs);
    let jt_path = path.child("jobTemplate");
    let jt = get(spec, "jobTemplate").unwrap_or(&Value::Null);
    let jspec = jt.get("spec").unwrap_or(&Value::Null);
    if jspec.get("manualSelector") == Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden(
            jt_path.child("spec").child("manualSelector"),
            "`manualSelector` is not supported in CronJob",
        ));
    }
    job_spec(jspec, &jt_path.child("spec"), errs);
}

/// `ValidateHorizontalPodAutoscaler` (autoscaling/v2 and v1 field names).
pub(crate) fn hpa(obj: &Value, errs: &mut Errs) {
    let spec = spec_of(obj);
    let path = Path::new("spec");
    let min = int_at(spec, "minReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            path.child("minReplicas"),
            m,
            "must be greater than or equal to 1",
        ));
    }
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = get(spec, "scaleTargetRef").unwrap_or(&Value::Null);
    let tp = path.child("scaleTargetRef");
    for key in ["kind", "name"] {
        let v = str_at(target, key);
        if v.is_empty() {
            errs.push(FieldError::required(tp.child(key), ""));
        } else {
            super::push_msgs(
                names::is_valid_path_segment_name(v),
                &tp.child(key),
                v,
                errs,
            );
        }
    }
}

pub(crate) mod cron {
    //! The standard 5-field cron syntax CronJobs accept (robfig/cron `ParseStandard`), with its messages.

    /// Checks a schedule; `Err` carries the parser's message.
    pub(crate) fn parse_standard(spec: &str) -> Result<(), String> {
        let spec = spec.trim();
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            return Err(
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string(),
            );
        }
        if let Some(desc) = spec.strip_prefix('@') {
            return match desc {
                "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                    Ok(())
                }
                d if d.starts_with("every ") => Ok(()),
                _ => Err(format!("unrecognized descriptor: {spec}")),
            };
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let bounds: [(u32, u32, &[&str]); 5] = [
            (0, 59, &[]),
            (0, 23, &[]),
            (1, 31, &[]),
            (1, 12, &MONTHS),
            (0, 6, &DAYS),
        ];
        for (field, (min, max, names)) in fields.iter().zip(bounds) {
            for part in field.split(',') {
                parse_range(part, min, max, names)?;
            }
        }
        Ok(())
    }

    fn parse_value(s: &str, names: &[&str], offset: u32) -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + offset);
        }
        s.parse::<u32>().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax")
        })
    }

    fn parse_range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
        let (range, step) = match expr.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (expr, None),
        };
        let offset = if min == 1 && !names.is_empty() { 1 } else { 0 };
        let (start, end) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                parse_value(a, names, offset)?,
                parse_value(b, names, offset)?,
            )
        } else {
            let v = parse_value(range, names, offset)?;
            (v, v)
        };
        if let Some(step) = step {
            let st = step
                .parse::<u32>()
                .map_err(|_| format!("failed to parse int from {step}: strconv.Atoi: parsing \"{step}\": invalid syntax"))?;
            if st == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
        }
        if start < min {
            return Err(format!(
                "beginning of range ({start}) below minimum ({min}): {expr}"
            ));
        }
        if end > max {
            return Err(format!(
                "end of range ({end}) above maximum ({max}): {expr}"
            ));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {expr}"
            ));
        }
        Ok(())
    }
}
