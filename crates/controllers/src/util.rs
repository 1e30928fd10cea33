//! Small pure helpers over JSON objects: owner references, pod state, timestamps,
//! int-or-percent values and the pod-template hash.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, as the planners receive it (they never read the clock).
pub type Time = OffsetDateTime;

/// Parses an RFC 3339 timestamp as the API server writes them.
pub fn parse_time(v: &Value) -> Option<Time> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

/// Formats a timestamp as Kubernetes does (`2006-01-02T15:04:05Z`, second precision).
pub fn format_time(t: Time) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `metadata.name` or "".
pub fn name(o: &Value) -> &str {
    api::meta::name(o).unwrap_or_default()
}

/// `metadata.uid` or "".
pub fn uid(o: &Value) -> &str {
    api::meta::uid(o).unwrap_or_default()
}

/// `metadata.creationTimestamp`, if parseable.
pub fn created(o: &Value) -> Option<Time> {
    parse_time(&o["metadata"]["creationTimestamp"])
}

/// An integer field, 0 when absent.
pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `metadata.annotations[key]`.
pub fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o["metadata"]["annotations"][key].as_str()
}

/// The controller owner reference (`controller: true`), if any.
pub fn controller_ref(o: &Value) -> Option<&Value> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}

/// The owner reference a controller puts on what it creates: `controller` so nobody
/// else claims the object, `blockOwnerDeletion` for foreground deletion.
pub fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `status.phase` of a pod.
pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

/// `controller.IsPodActive`: not Succeeded, not Failed, not being deleted.
pub fn is_pod_active(pod: &Value) -> bool {
    let p = phase(pod);
    p != "Succeeded" && p != "Failed" && !api::meta::is_deleting(pod)
}

/// The pod's Ready condition, if present.
pub fn ready_condition(pod: &Value) -> Option<&Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// `podutil.IsPodReady`: the Ready condition is True.
pub fn is_pod_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| c["status"] == "True")
}

/// `podutil.IsPodAvailable`: ready, and for at least `min_ready_seconds` (by the Ready
/// condition's lastTransitionTime).
pub fn is_pod_available(pod: &Value, min_ready_seconds: i64, now: Time) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let Some(since) = ready_condition(pod).and_then(|c| parse_time(&c["lastTransitionTime"]))
    else {
        return false;
    };
    since + time::Duration::seconds(min_ready_seconds) <= now
}

/// Resolves an int-or-percent against `total` (`intstr.GetScaledValueFromIntOrPercent`):
/// percentages are rounded up or down as asked. A malformed value counts as 0.
pub fn scaled_value(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse::<i64>().unwrap_or(0);
            };
            let x = p * total;
            if round_up {
                x.div_euclid(100) + i64::from(x.rem_euclid(100) != 0)
            } else {
                x.div_euclid(100)
            }
        }
        _ => 0,
    }
}

/// Removes nulls and empty objects/arrays recursively: Kubernetes' semantic equality
/// treats nil and empty maps and slices alike, and an absent field like a null one.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let n = normalize(x);
                if !is_empty(&n) {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Writes `v` with object keys sorted, so equal values always hash alike.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The pod-template hash (`controller.ComputeHash`): FNV-1a 32 of the template, then of
/// the collision count (little-endian u32) when set, printed in decimal and each digit
/// mapped through `rand.SafeEncodeString`'s alphabet (no vowels, no confusable digits).
/// The serialization differs from Go's, so values differ from Kubernetes', but the
/// properties (deterministic, changes with the template and the collision count) hold.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut s = String::new();
    canonical(&normalize(template), &mut s);
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(s.as_bytes());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// A label selector from a `metav1.LabelSelector` value (null or malformed: nothing).
pub fn selector(v: &Value) -> labels::LabelSelector {
    labels::LabelSelector::from_json(v).unwrap_or_else(|_| labels::LabelSelector::nothing())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentages_round_as_kubernetes() {
        // maxSurge rounds up, maxUnavailable down: 25% of 10 is 3 and 2.
        assert_eq!(scaled_value(&json!("25%"), 10, true), 3);
        assert_eq!(scaled_value(&json!("25%"), 10, false), 2);
        assert_eq!(scaled_value(&json!("25%"), 4, true), 1);
        assert_eq!(scaled_value(&json!(2), 10, true), 2);
        assert_eq!(scaled_value(&json!("100%"), 3, false), 3);
        assert_eq!(scaled_value(&json!("0%"), 3, true), 0);
    }

    #[test]
    fn hash_ignores_key_order_and_empty_fields_but_not_content() {
        let a = json!({"metadata": {"labels": {"app": "web", "x": "1"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let b = json!({"spec": {"containers": [{"image": "busybox", "name": "c"}], "volumes": []}, "metadata": {"creationTimestamp": null, "labels": {"x": "1", "app": "web"}}});
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        let c = json!({"metadata": {"labels": {"app": "web", "x": "1"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}});
        assert_ne!(template_hash(&a, None), template_hash(&c, None));
        // A collision count changes the hash (how Kubernetes escapes a name collision).
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        let h = template_hash(&a, None);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = parse_time(&json!("2024-01-01T00:01:00Z")).unwrap();
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:30Z"}]}});
        assert!(is_pod_available(&pod, 0, now));
        assert!(is_pod_available(&pod, 30, now));
        assert!(!is_pod_available(&pod, 31, now));
        assert!(!is_pod_available(&json!({"status": {}}), 0, now));
        assert_eq!(format_time(now), "2024-01-01T00:01:00Z");
    }

    #[test]
    fn terminal_and_deleting_pods_are_inactive() {
        assert!(is_pod_active(&json!({"status": {"phase": "Pending"}})));
        assert!(!is_pod_active(&json!({"status": {"phase": "Failed"}})));
        assert!(!is_pod_active(&json!({"status": {"phase": "Succeeded"}})));
        assert!(!is_pod_active(
            &json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
        ));
    }
}
