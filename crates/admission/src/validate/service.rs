//! Service, Endpoints and EndpointSlice validation (`ValidateService`, `ValidateServiceUpdate`,
//! `ValidateEndpoints` in `pkg/apis/core/validation`; `ValidateEndpointSlice` in
//! `pkg/apis/discovery/validation`).

use super::{Errs, arr_at, get, immutable, int_at, obj_at, push_msgs, str_at};
use crate::field::{FieldError, Path};
use crate::names;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::net::IpAddr;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const KUBELET_PORT: i64 = 10250;
/// `core.MaxClientIPServiceAffinitySeconds` (one day).
const MAX_CLIENT_IP_AFFINITY_SECONDS: i64 = 86400;
/// Kubernetes' message for an unparsable IP (`IsValidIP` / `IsValidIPForLegacyField`).
pub(crate) const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// The strings of the array under `key`.
fn strs<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    arr_at(v, key).iter().filter_map(Value::as_str).collect()
}

fn str_list(list: &[&str]) -> Value {
    Value::Array(
        list.iter()
            .map(|s| Value::String((*s).to_string()))
            .collect(),
    )
}

/// The cluster IPs as Kubernetes sees them after the create strategy (which copies `clusterIP` into an
/// empty `clusterIPs`).
fn cluster_ips(spec: &Value) -> Vec<&str> {
    let ips = strs(spec, "clusterIPs");
    if ips.is_empty() {
        let ip = str_at(spec, "clusterIP");
        if !ip.is_empty() {
            return vec![ip];
        }
    }
    ips
}

/// `isHeadlessService`: exactly one cluster IP, and it is `None`.
fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec) == ["None"]
}

/// `ValidateDNS1123Label` at `path`.
fn dns_label(value: &str, path: &Path, errs: &mut Errs) {
    push_msgs(names::is_dns1123_label(value), path, value, errs);
}

/// `ValidateNonSpecialIP`: endpoints and external IPs may not be unspecified, loopback or link-local.
pub(crate) fn non_special_ip(value: &str, path: &Path, errs: &mut Errs) {
    let Ok(ip) = value.parse::<IpAddr>() else {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a valid IP address",
        ));
        return;
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (unspecified, loopback, link_local, ll_multicast) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                v4.is_unspecified(),
                v4.is_loopback(),
                v4.is_link_local(),
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (
                v6.is_unspecified(),
                v6.is_loopback(),
                s[0] & 0xffc0 == 0xfe80,
                s[0] & 0xff0f == 0xff02,
            )
        }
    };
    if unspecified {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("may not be unspecified ({value})"),
        ));
    }
    if loopback {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if ll_multicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// `IsValidIP`: an IPv4 or IPv6 address; returns the parsed address.
fn valid_ip(value: &str, path: &Path, errs: &mut Errs) -> Option<IpAddr> {
    match value.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errs.push(FieldError::invalid(path, value, INVALID_IP));
            None
        }
    }
}

/// `ValidatePortNumOrName` for a `targetPort`.
fn port_num_or_name(v: Option<&Value>, path: &Path, errs: &mut Errs) {
    match v {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            for m in names::is_valid_port_num(n) {
                errs.push(FieldError::invalid(path, n, m));
            }
        }
        Some(Value::String(s)) => push_msgs(names::is_valid_port_name(s), path, s, errs),
        _ => {}
    }
}

/// `protocol` required and one of SCTP/TCP/UDP.
fn protocol(port: &Value, path: &Path, errs: &mut Errs) {
    match str_at(port, "protocol") {
        "" => errs.push(FieldError::required(path, "")),
        p if !PROTOCOLS.contains(&p) => errs.push(FieldError::not_supported(path, p, PROTOCOLS)),
        _ => {}
    }
}

/// `appProtocol`, when set, is a qualified name (`ValidateQualifiedName`).
fn app_protocol(port: &Value, path: &Path, errs: &mut Errs) {
    if let Some(ap) = get(port, "appProtocol").and_then(Value::as_str) {
        push_msgs(names::is_qualified_name(ap), path, ap, errs);
    }
}

/// `validateServicePort`: names required when there are several ports, unique DNS labels; port in range;
/// protocol; targetPort a port number or IANA name.
fn service_port(
    port: &Value,
    require_name: bool,
    all_names: &mut HashSet<String>,
    path: &Path,
    errs: &mut Errs,
) {
    let name = str_at(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        dns_label(name, &path.child("name"), errs);
        if !all_names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(path.child("name"), name));
        }
    }
    let num = int_at(port, "port").unwrap_or(0);
    for m in names::is_valid_port_num(num) {
        errs.push(FieldError::invalid(path.child("port"), num, m));
    }
    protocol(port, &path.child("protocol"), errs);
    port_num_or_name(get(port, "targetPort"), &path.child("targetPort"), errs);
    app_protocol(port, &path.child("appProtocol"), errs);
}

/// `ValidateService` (create) and `ValidateServiceUpdate` (cluster IPs may not change once allocated).
pub(crate) fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = get(obj, "spec").unwrap_or(&empty);
    if let Some(old) = old {
        cluster_ips_update(spec, get(old, "spec").unwrap_or(&empty), errs);
    }
    let path = Path::new("spec");
    let svc_type = str_at(spec, "type");
    let headless = is_headless(spec);
    let ports = arr_at(spec, "ports");
    if ports.is_empty() && !headless && svc_type != "ExternalName" {
        errs.push(FieldError::required(path.child("ports"), ""));
    }
    match svc_type {
        "LoadBalancer" => {
            for (i, p) in ports.iter().enumerate() {
                // Kubernetes' workaround for clouds that over-open firewalls.
                if int_at(p, "port") == Some(KUBELET_PORT) {
                    errs.push(FieldError::invalid(
                        path.child("ports").index(i),
                        KUBELET_PORT,
                        format!("may not expose port {KUBELET_PORT} externally since it is used by kubelet"),
                    ));
                }
            }
            if headless {
                errs.push(FieldError::invalid(
                    path.child("clusterIPs").index(0),
                    "None",
                    "may not be set to 'None' for LoadBalancer services",
                ));
            }
        }
        "NodePort" if headless => errs.push(FieldError::invalid(
            path.child("clusterIPs").index(0),
            "None",
            "may not be set to 'None' for NodePort services",
        )),
        "ExternalName" => {
            if !cluster_ips(spec).is_empty() {
                errs.push(FieldError::forbidden(
                    path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !arr_at(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                errs.push(FieldError::forbidden(
                    path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            // The CNAME may carry a trailing dot to mark it fully qualified.
            let cname = str_at(spec, "externalName")
                .strip_suffix('.')
                .unwrap_or(str_at(spec, "externalName"));
            if cname.is_empty() {
                errs.push(FieldError::required(path.child("externalName"), ""));
            } else {
                push_msgs(
                    names::is_dns1123_subdomain(cname),
                    &path.child("externalName"),
                    cname,
                    errs,
                );
            }
        }
        _ => {}
    }
    let mut all_names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        service_port(
            p,
            ports.len() > 1,
            &mut all_names,
            &path.child("ports").index(i),
            errs,
        );
    }
    if let Some(sel) = obj_at(spec, "selector") {
        super::meta::labels(Some(sel), &path.child("selector"), errs);
    }
    session_affinity(spec, &path, errs);
    if svc_type != "ExternalName" {
        cluster_ips_fields(spec, headless, &path, errs);
    }
    for (i, ip) in strs(spec, "externalIPs").into_iter().enumerate() {
        let p = path.child("externalIPs").index(i);
        if valid_ip(ip, &p, errs).is_some() {
            non_special_ip(ip, &p, errs);
        }
    }
    match svc_type {
        "" => errs.push(FieldError::required(path.child("type"), "")),
        t if !SERVICE_TYPES.contains(&t) => errs.push(FieldError::not_supported(
            path.child("type"),
            t,
            SERVICE_TYPES,
        )),
        _ => {}
    }
    if svc_type == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if int_at(p, "nodePort").is_some_and(|n| n != 0) {
                errs.push(FieldError::forbidden(
                    path.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    // Node ports and ports are unique per protocol.
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let Some(np) = int_at(p, "nodePort").filter(|n| *n != 0) else {
            continue;
        };
        if !node_ports.insert((str_at(p, "protocol"), np)) {
            errs.push(FieldError::duplicate(
                path.child("ports").index(i).child("nodePort"),
                np,
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (str_at(p, "protocol"), int_at(p, "port").unwrap_or(0));
        if !seen.insert(key) {
            let mut shown = Map::new();
            shown.insert("protocol".to_string(), Value::from(key.0));
            shown.insert("port".to_string(), Value::from(key.1));
            errs.push(FieldError::duplicate(
                path.child("ports").index(i),
                Value::Object(shown),
            ));
        }
    }
    traffic_policies(spec, svc_type, &path, errs);
}

/// `sessionAffinity` required (defaulted to None) and consistent with `sessionAffinityConfig`.
fn session_affinity(spec: &Value, path: &Path, errs: &mut Errs) {
    let affinity = str_at(spec, "sessionAffinity");
    match affinity {
        "" => errs.push(FieldError::required(path.child("sessionAffinity"), "")),
        "ClientIP" | "None" => {}
        other => errs.push(FieldError::not_supported(
            path.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    let cfg_path = path.child("sessionAffinityConfig");
    let cfg = get(spec, "sessionAffinityConfig");
    if affinity == "ClientIP" {
        let detail = "when session affinity type is ClientIP";
        let Some(cfg) = cfg else {
            errs.push(FieldError::required(cfg_path, detail));
            return;
        };
        let Some(client_ip) = get(cfg, "clientIP") else {
            errs.push(FieldError::required(cfg_path.child("clientIP"), detail));
            return;
        };
        let tpath = cfg_path.child("clientIP").child("timeoutSeconds");
        match int_at(client_ip, "timeoutSeconds") {
            None => errs.push(FieldError::required(tpath, detail)),
            Some(t) if t <= 0 || t > MAX_CLIENT_IP_AFFINITY_SECONDS => {
                errs.push(FieldError::invalid(
                    tpath,
                    t,
                    format!(
                        "must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"
                    ),
                ))
            }
            Some(_) => {}
        }
    } else if affinity == "None" && cfg.is_some() {
        errs.push(FieldError::forbidden(
            cfg_path,
            "must not be set when session affinity is None",
        ));
    }
}

/// `ValidateServiceClusterIPsRelatedFields`: clusterIP/clusterIPs agree, valid IPs (or a lone `None`), at
/// most one per family and matching `ipFamilies`, valid family and policy values.
fn cluster_ips_fields(spec: &Value, headless: bool, path: &Path, errs: &mut Errs) {
    let ips_path = path.child("clusterIPs");
    let fam_path = path.child("ipFamilies");
    let cluster_ip = str_at(spec, "clusterIP");
    let ips = strs(spec, "clusterIPs");
    let ips_value = str_list(&ips);
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(&ips_path, ""));
        } else if ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                &ips_path,
                ips_value.clone(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value.clone(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families = strs(spec, "ipFamilies");
    let mut seen = HashSet::new();
    for (i, f) in families.iter().enumerate() {
        if !matches!(*f, "IPv4" | "IPv6") {
            errs.push(FieldError::not_supported(
                fam_path.index(i),
                *f,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(*f) {
            errs.push(FieldError::duplicate(fam_path.index(i), *f));
        }
    }
    if let Some(policy) = get(spec, "ipFamilyPolicy").and_then(Value::as_str) {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                path.child("ipFamilyPolicy"),
                policy,
                POLICIES,
            ));
        }
    }
    let mut parsed = Vec::new();
    let mut has_invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                has_invalid = true;
                errs.push(FieldError::invalid(
                    &ips_path,
                    ips_value.clone(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        match valid_ip(ip, &ips_path.index(i), errs) {
            Some(addr) => parsed.push(addr),
            None => has_invalid = true,
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value.clone(),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid {
        return;
    }
    if ips.len() > 1 && parsed.len() == ips.len() && parsed[0].is_ipv4() == parsed[1].is_ipv4() {
        errs.push(FieldError::invalid(
            &ips_path,
            ips_value,
            "may specify no more than one IP for each IP family",
        ));
    }
    if !headless {
        for (i, (ip, fam)) in parsed.iter().zip(&families).enumerate() {
            if *fam == "IPv4" && ip.is_ipv6() {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ips[i],
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if *fam == "IPv6" && ip.is_ipv4() {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ips[i],
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// External and internal traffic policies and the health-check node port.
fn traffic_policies(spec: &Value, svc_type: &str, path: &Path, errs: &mut Errs) {
    let externally_accessible = matches!(svc_type, "LoadBalancer" | "NodePort")
        || (svc_type == "ClusterIP" && !arr_at(spec, "externalIPs").is_empty());
    let etp = str_at(spec, "externalTrafficPolicy");
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(FieldError::invalid(
                path.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required(
            path.child("externalTrafficPolicy"),
            "",
        ));
    } else if !matches!(etp, "Cluster" | "Local") {
        errs.push(FieldError::not_supported(
            path.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let needs_health_check = svc_type == "LoadBalancer" && etp == "Local";
    if let Some(hc) = int_at(spec, "healthCheckNodePort").filter(|n| *n != 0)
        && !needs_health_check
    {
        errs.push(FieldError::invalid(
            path.child("healthCheckNodePort"),
            hc,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    let itp_path = path.child("internalTrafficPolicy");
    match get(spec, "internalTrafficPolicy").and_then(Value::as_str) {
        None if matches!(svc_type, "ClusterIP" | "NodePort" | "LoadBalancer") => {
            errs.push(FieldError::required(itp_path, ""))
        }
        Some(p) if !matches!(p, "Cluster" | "Local") => errs.push(FieldError::not_supported(
            itp_path,
            p,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
}

/// `validateUpgradeDowngradeClusterIPs`: an allocated primary cluster IP never changes; a secondary one may
/// only be added, or released together with `ipFamilyPolicy: SingleStack`. ExternalName services (old or
/// new) have no cluster IPs to keep.
fn cluster_ips_update(new: &Value, old: &Value, errs: &mut Errs) {
    if str_at(new, "type") == "ExternalName" || str_at(old, "type") == "ExternalName" {
        return;
    }
    if is_headless(new) && is_headless(old) {
        return;
    }
    let path = Path::new("spec").child("clusterIPs");
    let new_ips = cluster_ips(new);
    let old_ips = cluster_ips(old);
    let shown = str_list(&new_ips);
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if new_ips[i] != *ip {
                errs.push(FieldError::invalid(
                    path.index(i),
                    shown.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                shown.clone(),
                "primary clusterIP can not be unset",
            ));
        } else if new_ips[0] != old_ips[0] {
            errs.push(FieldError::invalid(
                path.index(0),
                shown.clone(),
                "may not change once set",
            ));
        }
        if new_ips.len() == 1 && str_at(new, "ipFamilyPolicy") != "SingleStack" {
            errs.push(FieldError::invalid(
                path.index(0),
                shown,
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(FieldError::invalid(
            path.index(0),
            shown,
            "may not change once set",
        ));
    }
}

/// `ValidateEndpoints`: each subset has addresses (valid, non-special IPs) and valid ports.
pub(crate) fn endpoints(obj: &Value, errs: &mut Errs) {
    let path = Path::new("subsets");
    for (i, ss) in arr_at(obj, "subsets").iter().enumerate() {
        let p = path.index(i);
        let addresses = arr_at(ss, "addresses");
        let not_ready = arr_at(ss, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (key, list) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                endpoint_address(a, &p.child(key).index(j), errs);
            }
        }
        let ports = arr_at(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(j);
            let name = str_at(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(pp.child("name"), ""));
            } else if !name.is_empty() {
                dns_label(name, &pp.child("name"), errs);
            }
            let num = int_at(port, "port").unwrap_or(0);
            for m in names::is_valid_port_num(num) {
                errs.push(FieldError::invalid(pp.child("port"), num, m));
            }
            protocol(port, &pp.child("protocol"), errs);
            app_protocol(port, &pp.child("appProtocol"), errs);
        }
    }
}

fn endpoint_address(a: &Value, path: &Path, errs: &mut Errs) {
    let ip = str_at(a, "ip");
    let ip_ok = valid_ip(ip, &path.child("ip"), errs).is_some();
    let hostname = str_at(a, "hostname");
    if !hostname.is_empty() {
        dns_label(hostname, &path.child("hostname"), errs);
    }
    if let Some(node) = get(a, "nodeName").and_then(Value::as_str) {
        push_msgs(
            names::is_dns1123_subdomain(node),
            &path.child("nodeName"),
            node,
            errs,
        );
    }
    if ip_ok {
        non_special_ip(ip, &path.child("ip"), errs);
    }
}

/// `ValidateEndpointSlice` (+ immutable `addressType` on update).
pub(crate) fn endpoint_slice(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
    let addr_type = str_at(obj, "addressType");
    match addr_type {
        "" => errs.push(FieldError::required("addressType", "")),
        t if !ADDRESS_TYPES.contains(&t) => {
            errs.push(FieldError::not_supported("addressType", t, ADDRESS_TYPES))
        }
        _ => {}
    }
    slice_endpoints(
        arr_at(obj, "endpoints"),
        addr_type,
        &Path::new("endpoints"),
        errs,
    );
    slice_ports(arr_at(obj, "ports"), &Path::new("ports"), errs);
    if let Some(old) = old {
        immutable(
            get(obj, "addressType"),
            get(old, "addressType"),
            "addressType",
            errs,
        );
    }
}

fn slice_endpoints(list: &[Value], addr_type: &str, path: &Path, errs: &mut Errs) {
    const MAX_ENDPOINTS: usize = 1000;
    const MAX_ADDRESSES: usize = 100;
    const MAX_TOPOLOGY_LABELS: usize = 16;
    if list.len() > MAX_ENDPOINTS {
        errs.push(FieldError::too_many(path, list.len(), MAX_ENDPOINTS));
        return;
    }
    for (i, ep) in list.iter().enumerate() {
        let p = path.index(i);
        let apath = p.child("addresses");
        let addresses = arr_at(ep, "addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(
                &apath,
                "must contain at least 1 address",
            ));
        } else if addresses.len() > MAX_ADDRESSES {
            errs.push(FieldError::too_many(&apath, addresses.len(), MAX_ADDRESSES));
        }
        for (j, a) in addresses.iter().enumerate() {
            let a = a.as_str().unwrap_or_default();
            let ap = apath.index(j);
            match addr_type {
                "IPv4" => match a.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => non_special_ip(a, &ap, errs),
                    _ => errs.push(FieldError::invalid(&ap, a, "must be a valid IPv4 address")),
                },
                "IPv6" => match a.parse::<IpAddr>() {
                    Ok(IpAddr::V6(_)) => non_special_ip(a, &ap, errs),
                    _ => errs.push(FieldError::invalid(&ap, a, "must be a valid IPv6 address")),
                },
                "FQDN" => fqdn(a, &ap, errs),
                _ => {}
            }
        }
        if let Some(node) = get(ep, "nodeName").and_then(Value::as_str) {
            push_msgs(
                names::is_dns1123_subdomain(node),
                &p.child("nodeName"),
                node,
                errs,
            );
        }
        let topo = obj_at(ep, "deprecatedTopology");
        let tpath = p.child("deprecatedTopology");
        if let Some(t) = topo.filter(|t| t.len() > MAX_TOPOLOGY_LABELS) {
            errs.push(FieldError::too_many(&tpath, t.len(), MAX_TOPOLOGY_LABELS));
        }
        super::meta::labels(topo, &tpath, errs);
        if let Some(h) = get(ep, "hostname").and_then(Value::as_str) {
            dns_label(h, &p.child("hostname"), errs);
        }
    }
}

/// `IsFullyQualifiedDomainName`: a DNS subdomain with at least two labels (trailing dot allowed).
fn fqdn(name: &str, path: &Path, errs: &mut Errs) {
    if name.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let msgs = names::is_dns1123_subdomain(name);
    if !msgs.is_empty() {
        errs.push(FieldError::invalid(path, name, msgs.join(",")));
        return;
    }
    if name.split('.').count() < 2 {
        errs.push(FieldError::invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        ));
    }
}

fn slice_ports(list: &[Value], path: &Path, errs: &mut Errs) {
    const MAX_PORTS: usize = 20000;
    if list.len() > MAX_PORTS {
        errs.push(FieldError::too_many(path, list.len(), MAX_PORTS));
        return;
    }
    let mut names_seen = HashSet::new();
    for (i, port) in list.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            dns_label(name, &p.child("name"), errs);
        }
        if !names_seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(p.child("name"), name));
        }
        protocol(port, &p.child("protocol"), errs);
        app_protocol(port, &p.child("appProtocol"), errs);
    }
}
