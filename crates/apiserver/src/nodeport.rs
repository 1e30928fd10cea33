//! NodePort allocation for Services, as Kubernetes' service registry does it: ports in
//! 30000-32767, a requested port is honoured if free, a missing one is picked at random,
//! an update that leaves them out keeps them. The allocation is derived from the stored
//! Services (like cluster IPs), so a deleted Service releases its ports and a restart
//! loses nothing.

use crate::state::{State, store_error};
use api::status::Cause;
use api::{ApiError, ResourceInfo, meta};
use serde_json::{Value, json};
use std::collections::HashSet;

/// The node port range.
pub(crate) const FIRST: u16 = 30000;
/// Last port of the range.
pub(crate) const LAST: u16 = 32767;

/// True if `svc` gets node ports: NodePort, or LoadBalancer unless
/// `allocateLoadBalancerNodePorts: false`.
fn wants_node_ports(svc: &Value) -> bool {
    match svc["spec"]["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => svc["spec"]["allocateLoadBalancerNodePorts"] != json!(false),
        _ => false,
    }
}

fn node_port(p: &Value) -> Option<u16> {
    p["nodePort"]
        .as_u64()
        .filter(|n| *n != 0)
        .map(|n| u16::try_from(n).unwrap_or(u16::MAX))
}

/// For an update: ports that lost their nodePort get the old one back (matched by port
/// and protocol), and a type that no longer uses node ports drops the old ones.
pub(crate) fn carry_over(old: &Value, new: &mut Value) {
    let old_ports: Vec<Value> = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let keep = wants_node_ports(new);
    let Some(ports) = new["spec"]["ports"].as_array_mut() else {
        return;
    };
    let same = |a: &Value, b: &Value| {
        a["port"] == b["port"]
            && a["protocol"].as_str().unwrap_or("TCP") == b["protocol"].as_str().unwrap_or("TCP")
    };
    for p in ports.iter_mut() {
        let Some(o) = old_ports.iter().find(|o| same(o, p)) else {
            continue;
        };
        if keep && node_port(p).is_none() {
            if let Some(np) = node_port(o) {
                p["nodePort"] = json!(np);
            }
        } else if !keep
            && node_port(p).is_some()
            && node_port(p) == node_port(o)
            && let Some(m) = p.as_object_mut()
        {
            m.remove("nodePort");
        }
    }
}

fn invalid(svc: &Value, field: String, value: u64, why: &str) -> ApiError {
    let name = meta::name(svc).unwrap_or("");
    let message = format!("Invalid value: {value}: {why}");
    ApiError::invalid(
        "",
        "Service",
        name,
        format!("Service \"{name}\" is invalid: {field}: {message}"),
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field,
        }],
    )
}

/// Checks requested node ports (in range, not held by another Service) and allocates the
/// missing ones. `svc` is the object about to be stored (create or update).
pub(crate) async fn allocate(
    state: &State,
    info: &ResourceInfo,
    svc: &mut Value,
) -> Result<(), ApiError> {
    if !wants_node_ports(svc) {
        return Ok(());
    }
    let ports_len = svc["spec"]["ports"].as_array().map_or(0, Vec::len);
    if ports_len == 0 {
        return Ok(());
    }
    let me = (
        meta::namespace(svc).unwrap_or("").to_string(),
        meta::name(svc).unwrap_or("").to_string(),
    );
    let page = state
        .store
        .list(&info.key_prefix(), None, None, 0)
        .await
        .map_err(store_error)?;
    let mut used: HashSet<u16> = page
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(|s| {
            (
                meta::namespace(s).unwrap_or("").to_string(),
                meta::name(s).unwrap_or("").to_string(),
            ) != me
        })
        .flat_map(|s| {
            s["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(node_port)
                .collect::<Vec<_>>()
        })
        .collect();
    // Requested ports first, so random picks never take one asked for later in the list.
    let mut mine = HashSet::new();
    for i in 0..ports_len {
        let p = &svc["spec"]["ports"][i];
        let Some(raw) = p["nodePort"].as_u64().filter(|n| *n != 0) else {
            continue;
        };
        let field = format!("spec.ports[{i}].nodePort");
        if !(u64::from(FIRST)..=u64::from(LAST)).contains(&raw) {
            return Err(invalid(
                svc,
                field,
                raw,
                &format!(
                    "provided port is not in the valid range. The range of valid ports is {FIRST}-{LAST}"
                ),
            ));
        }
        let np = raw as u16;
        if used.contains(&np) {
            return Err(invalid(
                svc,
                field,
                raw,
                "provided port is already allocated",
            ));
        }
        mine.insert(np);
    }
    used.extend(mine);
    use rand::Rng;
    let mut rng = rand::rng();
    for i in 0..ports_len {
        if node_port(&svc["spec"]["ports"][i]).is_some() {
            continue;
        }
        let free = (0..4096)
            .map(|_| rng.random_range(FIRST..=LAST))
            .find(|n| !used.contains(n))
            .or_else(|| (FIRST..=LAST).find(|n| !used.contains(n)));
        let Some(np) = free else {
            return Err(ApiError::internal(format!(
                "the node port range {FIRST}-{LAST} is full"
            )));
        };
        used.insert(np);
        svc["spec"]["ports"][i]["nodePort"] = json!(np);
    }
    Ok(())
}
