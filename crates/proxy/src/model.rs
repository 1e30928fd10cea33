//! Typed views of the API objects the proxy and DNS read (Services, EndpointSlices, and
//! v1 Endpoints as a fallback), and the endpoint selection rules both share. Pure.

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the API spelling; absent means TCP.
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" | "" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Lowercase name, as nft and DNS SRV labels spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The `spec.type` of a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    /// Virtual IP only.
    ClusterIp,
    /// Virtual IP plus a port on every node.
    NodePort,
    /// Treated as NodePort (no load balancer provider).
    LoadBalancer,
    /// A DNS alias (CNAME), no proxying.
    ExternalName,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// The port name ("" when the service has a single unnamed port).
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// The port on the cluster IP.
    pub port: u16,
    /// The node port, for NodePort/LoadBalancer services.
    pub node_port: Option<u16>,
}

/// The parts of a Service the proxy and DNS use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Type.
    pub kind: ServiceType,
    /// Allocated cluster IPs (empty when headless or ExternalName).
    pub cluster_ips: Vec<IpAddr>,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `spec.externalName` of an ExternalName service.
    pub external_name: Option<String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP`: the pinning timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `publishNotReadyAddresses`: DNS lists not-ready endpoints too.
    pub publish_not_ready: bool,
}

impl Service {
    /// Parses a Service object; None if it lacks a name.
    pub fn from_json(o: &Value) -> Option<Service> {
        let namespace = o["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = o["metadata"]["name"].as_str()?;
        let spec = &o["spec"];
        let kind = match spec["type"].as_str().unwrap_or("ClusterIP") {
            "NodePort" => ServiceType::NodePort,
            "LoadBalancer" => ServiceType::LoadBalancer,
            "ExternalName" => ServiceType::ExternalName,
            _ => ServiceType::ClusterIp,
        };
        let mut ips: Vec<&str> = spec["clusterIPs"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if ips.is_empty()
            && let Some(ip) = spec["clusterIP"].as_str()
        {
            ips.push(ip);
        }
        let headless = ips.first() == Some(&"None");
        let cluster_ips = if kind == ServiceType::ExternalName {
            Vec::new()
        } else {
            ips.iter().filter_map(|s| s.parse().ok()).collect()
        };
        let ports = spec["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(ServicePort {
                    name: p["name"].as_str().unwrap_or("").to_string(),
                    protocol: Protocol::parse(p["protocol"].as_str())?,
                    port: u16::try_from(p["port"].as_u64()?).ok()?,
                    node_port: p["nodePort"]
                        .as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n != 0),
                })
            })
            .collect();
        let affinity_timeout = (spec["sessionAffinity"].as_str() == Some("ClientIP")).then(|| {
            spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(10800)
        });
        Some(Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind,
            cluster_ips,
            headless,
            external_name: spec["externalName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            ports,
            affinity_timeout,
            publish_not_ready: spec["publishNotReadyAddresses"] == Value::Bool(true),
        })
    }

    /// True if the node ports of this service are open.
    pub fn has_node_ports(&self) -> bool {
        matches!(self.kind, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

/// One port of an endpoint slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// Matches the service port's name.
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// The port on the endpoints.
    pub port: u16,
}

/// One endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Its addresses (one in practice).
    pub addresses: Vec<IpAddr>,
    /// `conditions.ready` (absent means true, as the API defines).
    pub ready: bool,
    /// `conditions.serving` (absent means `ready`).
    pub serving: bool,
    /// `conditions.terminating` (absent means false).
    pub terminating: bool,
    /// `hostname` (headless DNS names).
    pub hostname: Option<String>,
}

/// The parts of an EndpointSlice (or of one subset of a v1 Endpoints) used here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// Namespace.
    pub namespace: String,
    /// The service it belongs to (`kubernetes.io/service-name`).
    pub service: String,
    /// Ports.
    pub ports: Vec<SlicePort>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

fn slice_ports(ports: &Value) -> Vec<SlicePort> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(SlicePort {
                name: p["name"].as_str().unwrap_or("").to_string(),
                protocol: Protocol::parse(p["protocol"].as_str())?,
                port: u16::try_from(p["port"].as_u64()?).ok()?,
            })
        })
        .collect()
}

impl Slice {
    /// Parses a `discovery.k8s.io/v1` EndpointSlice; None if it belongs to no service.
    pub fn from_endpoint_slice(o: &Value) -> Option<Slice> {
        let namespace = o["metadata"]["namespace"].as_str().unwrap_or("default");
        let service = o["metadata"]["labels"]["kubernetes.io/service-name"].as_str()?;
        if o["addressType"].as_str() == Some("FQDN") {
            return None;
        }
        let endpoints = o["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let c = &e["conditions"];
                let ready = c["ready"].as_bool().unwrap_or(true);
                Endpoint {
                    addresses: e["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str()?.parse().ok())
                        .collect(),
                    ready,
                    serving: c["serving"].as_bool().unwrap_or(ready),
                    terminating: c["terminating"].as_bool().unwrap_or(false),
                    hostname: e["hostname"]
                        .as_str()
                        .filter(|h| !h.is_empty())
                        .map(str::to_string),
                }
            })
            .collect();
        Some(Slice {
            namespace: namespace.to_string(),
            service: service.to_string(),
            ports: slice_ports(&o["ports"]),
            endpoints,
        })
    }

    /// Converts a v1 Endpoints object (one slice per subset): `addresses` are ready,
    /// `notReadyAddresses` are neither ready nor serving.
    pub fn from_endpoints(o: &Value) -> Vec<Slice> {
        let namespace = o["metadata"]["namespace"].as_str().unwrap_or("default");
        let Some(service) = o["metadata"]["name"].as_str() else {
            return Vec::new();
        };
        let addrs = |v: &Value, ready: bool| -> Vec<Endpoint> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    Some(Endpoint {
                        addresses: vec![a["ip"].as_str()?.parse().ok()?],
                        ready,
                        serving: ready,
                        terminating: false,
                        hostname: a["hostname"]
                            .as_str()
                            .filter(|h| !h.is_empty())
                            .map(str::to_string),
                    })
                })
                .collect()
        };
        o["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let mut endpoints = addrs(&s["addresses"], true);
                endpoints.extend(addrs(&s["notReadyAddresses"], false));
                Slice {
                    namespace: namespace.to_string(),
                    service: service.to_string(),
                    ports: slice_ports(&s["ports"]),
                    endpoints,
                }
            })
            .collect()
    }

    /// True if this slice belongs to `svc`.
    pub fn is_for(&self, svc: &Service) -> bool {
        self.namespace == svc.namespace && self.service == svc.name
    }
}

/// Which endpoints get traffic, as kube-proxy decides: the ready ones; if there are
/// none, the ones still serving while terminating (so a rolling update's last pod keeps
/// answering until it really stops).
pub fn usable<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.filter(|e| e.serving && e.terminating).collect()
}

/// The backends (address, port) of one service port, sorted and de-duplicated: from
/// every slice of the service whose port of the same name and protocol is known.
pub fn backends(svc: &Service, port: &ServicePort, slices: &[Slice]) -> Vec<(IpAddr, u16)> {
    let mut ready = BTreeSet::new();
    let mut fallback = BTreeSet::new();
    for s in slices.iter().filter(|s| s.is_for(svc)) {
        let Some(sp) = s
            .ports
            .iter()
            .find(|p| p.name == port.name && p.protocol == port.protocol)
        else {
            continue;
        };
        for e in &s.endpoints {
            for a in &e.addresses {
                if e.ready {
                    ready.insert((*a, sp.port));
                } else if e.serving && e.terminating {
                    fallback.insert((*a, sp.port));
                }
            }
        }
    }
    if ready.is_empty() {
        fallback.into_iter().collect()
    } else {
        ready.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_service() {
        let s = Service::from_json(&json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        assert_eq!(s.kind, ServiceType::NodePort);
        assert_eq!(s.cluster_ips, vec!["10.96.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.affinity_timeout, Some(10800));
        assert_eq!(s.ports[0].node_port, Some(30080));
        assert_eq!(s.ports[1].protocol, Protocol::Udp);
        let h = Service::from_json(&json!({
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"clusterIP": "None", "ports": []}
        }))
        .unwrap();
        assert!(h.headless && h.cluster_ips.is_empty());
    }

    fn slice(eps: serde_json::Value) -> Slice {
        Slice::from_endpoint_slice(&json!({
            "metadata": {"name": "web-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps,
        }))
        .unwrap()
    }

    #[test]
    fn ready_endpoints_win_then_serving_terminating() {
        let svc = Service::from_json(&json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80}]}
        }))
        .unwrap();
        let s = slice(json!([
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.0.0.4"]},
            {"addresses": ["10.0.0.5"], "conditions": {"ready": false}},
        ]));
        let b = backends(&svc, &svc.ports[0], std::slice::from_ref(&s));
        assert_eq!(
            b,
            vec![
                ("10.0.0.2".parse().unwrap(), 8080),
                ("10.0.0.4".parse().unwrap(), 8080)
            ]
        );
        let s = slice(json!([
            {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.0.0.5"], "conditions": {"ready": false}},
        ]));
        let b = backends(&svc, &svc.ports[0], &[s]);
        assert_eq!(b, vec![("10.0.0.3".parse().unwrap(), 8080)]);
    }

    #[test]
    fn endpoints_fallback() {
        let s = Slice::from_endpoints(&json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "subsets": [{"addresses": [{"ip": "10.0.0.2"}], "notReadyAddresses": [{"ip": "10.0.0.3"}],
                         "ports": [{"name": "http", "port": 8080}]}]
        }));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].endpoints.len(), 2);
        assert!(s[0].endpoints[0].ready && !s[0].endpoints[1].ready);
    }
}
