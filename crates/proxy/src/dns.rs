//! Cluster DNS: authoritative for the cluster domain, built from the Service and
//! EndpointSlice watches, served over UDP and TCP by `hickory-server`; other names are
//! forwarded to the host's resolvers.
//!
//! Names (with the default domain `cluster.local`), as Kubernetes' DNS specification:
//!
//! | name | answer |
//! | --- | --- |
//! | `svc.ns.svc.cluster.local` | A/AAAA: the cluster IPs; headless: the ready endpoints' IPs; ExternalName: CNAME |
//! | `host.svc.ns.svc.cluster.local` | headless: the endpoint with that `hostname` (else named `a-b-c-d`) |
//! | `_port._proto.svc.ns.svc.cluster.local` | SRV per named port (headless: one per endpoint, its port) |
//! | `a-b-c-d.ns.pod.cluster.local` | A `a.b.c.d` |
//! | reverse names of cluster IPs and headless endpoints | PTR |
//!
//! Other names under the domain are NXDOMAIN (with the SOA, so negative answers are
//! cached briefly); reverse names we do not know are forwarded like any other name.

use crate::model::{Protocol, Service, ServiceType, Slice, usable};
use crate::{ProxyError, watch};
use futures::StreamExt;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where and for what the DNS server answers.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// UDP and TCP address to listen on.
    pub listen: SocketAddr,
    /// The cluster domain, normally `cluster.local`.
    pub cluster_domain: String,
    /// Resolvers for other names (the host's `/etc/resolv.conf`); empty: SERVFAIL.
    pub upstream: Vec<SocketAddr>,
}

/// The `nameserver` lines of a resolv.conf text as port-53 addresses (what
/// [`DnsConfig::upstream`] wants from the host's `/etc/resolv.conf`).
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            // A scoped IPv6 address (fe80::1%eth0) is not usable as a plain address.
            let ip: IpAddr = w.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// TTL of every answer we make: short, since answers follow watches.
const TTL: u32 = 5;

/// One record's data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rec {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Alias (an ExternalName's target).
    Cname(String),
    /// Service location.
    Srv {
        /// Port.
        port: u16,
        /// Target host name.
        target: String,
    },
    /// Reverse name.
    Ptr(String),
}

impl Rec {
    fn matches(&self, t: RecordType) -> bool {
        matches!(
            (self, t),
            (_, RecordType::ANY)
                | (Rec::A(_), RecordType::A)
                | (Rec::Aaaa(_), RecordType::AAAA)
                | (Rec::Cname(_), RecordType::CNAME)
                | (Rec::Srv { .. }, RecordType::SRV)
                | (Rec::Ptr(_), RecordType::PTR)
        )
    }
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Records for the name (owner name, data); never empty.
    Records(Vec<(String, Rec)>),
    /// The name exists but has no record of that type.
    NoData,
    /// The name is in the cluster domain and does not exist.
    NxDomain,
    /// Not ours: forward it.
    NotOurs,
}

/// The cluster domain's content at one moment. Pure: built from parsed objects.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    domain: String,
    names: BTreeMap<String, BTreeSet<Rec>>,
    /// Names that exist only because longer names sit under them.
    interior: BTreeSet<String>,
    ptr: BTreeMap<IpAddr, BTreeSet<String>>,
}

fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string().replace('.', "-"),
        IpAddr::V6(a) => a.to_string().replace(':', "-"),
    }
}

fn addr_rec(ip: IpAddr) -> Rec {
    match ip {
        IpAddr::V4(a) => Rec::A(a),
        IpAddr::V6(a) => Rec::Aaaa(a),
    }
}

/// Lowercase, no trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, nibbles `.ip6.arpa`) stands for.
pub fn parse_reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let parts: Vec<u8> = rest
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        if parts.len() != 4 {
            return None;
        }
        return Some(IpAddr::V4(Ipv4Addr::new(
            parts[3], parts[2], parts[1], parts[0],
        )));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|n| u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        // rchunks from the end: the last two nibbles are the first byte.
        bytes[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

impl Zone {
    /// Builds the zone of `domain` from the current Services and slices.
    pub fn build(domain: &str, services: &[Service], slices: &[Slice]) -> Zone {
        let domain = normalize(domain);
        let mut z = Zone {
            domain: domain.clone(),
            ..Zone::default()
        };
        z.interior.insert(domain.clone());
        z.interior.insert(format!("svc.{domain}"));
        z.interior.insert(format!("pod.{domain}"));
        for svc in services {
            let base = format!("{}.{}.svc.{domain}", svc.name, svc.namespace);
            z.interior.insert(format!("{}.svc.{domain}", svc.namespace));
            z.interior.insert(format!("{}.pod.{domain}", svc.namespace));
            if svc.kind == ServiceType::ExternalName {
                if let Some(target) = &svc.external_name {
                    z.add(&base, Rec::Cname(normalize(target)));
                }
                continue;
            }
            if !svc.headless {
                if svc.cluster_ips.is_empty() {
                    continue;
                }
                z.interior.insert(base.clone());
                for ip in &svc.cluster_ips {
                    z.add(&base, addr_rec(*ip));
                    z.ptr.entry(*ip).or_default().insert(base.clone());
                }
                for p in svc.ports.iter().filter(|p| !p.name.is_empty()) {
                    let srv = format!("_{}._{}.{base}", p.name, p.protocol.as_str());
                    z.interior
                        .insert(format!("_{}.{base}", p.protocol.as_str()));
                    z.add(
                        &srv,
                        Rec::Srv {
                            port: p.port,
                            target: base.clone(),
                        },
                    );
                }
                continue;
            }
            // Headless: the endpoints themselves.
            z.interior.insert(base.clone());
            for s in slices.iter().filter(|s| s.is_for(svc)) {
                let eps: Vec<_> = if svc.publish_not_ready {
                    s.endpoints.iter().collect()
                } else {
                    usable(s.endpoints.iter())
                };
                for e in eps {
                    for ip in &e.addresses {
                        let host = e.hostname.clone().unwrap_or_else(|| dashed(ip));
                        let fqdn = format!("{host}.{base}");
                        z.add(&base, addr_rec(*ip));
                        z.add(&fqdn, addr_rec(*ip));
                        z.ptr.entry(*ip).or_default().insert(fqdn.clone());
                        for p in s.ports.iter().filter(|p| !p.name.is_empty()) {
                            let proto: Protocol = p.protocol;
                            z.interior.insert(format!("_{}.{base}", proto.as_str()));
                            z.add(
                                &format!("_{}._{}.{base}", p.name, proto.as_str()),
                                Rec::Srv {
                                    port: p.port,
                                    target: fqdn.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
        z
    }

    fn add(&mut self, name: &str, rec: Rec) {
        self.names.entry(name.to_string()).or_default().insert(rec);
    }

    /// The cluster domain (lowercase, no trailing dot).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True if `name` (normalized) is the domain or under it.
    fn in_domain(&self, name: &str) -> bool {
        name == self.domain
            || name
                .strip_suffix(&self.domain)
                .is_some_and(|p| p.ends_with('.'))
    }

    /// Answers `qtype` for `name` (any case, trailing dot optional).
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Answer {
        let name = normalize(name);
        if let Some(ip) = parse_reverse(&name) {
            return match self.ptr.get(&ip) {
                Some(targets) if qtype == RecordType::PTR || qtype == RecordType::ANY => {
                    Answer::Records(
                        targets
                            .iter()
                            .map(|t| (name.clone(), Rec::Ptr(t.clone())))
                            .collect(),
                    )
                }
                Some(_) => Answer::NoData,
                None => Answer::NotOurs,
            };
        }
        if !self.in_domain(&name) {
            return Answer::NotOurs;
        }
        if let Some(recs) = self.names.get(&name) {
            let cname: Vec<_> = recs
                .iter()
                .filter(|r| matches!(r, Rec::Cname(_)))
                .cloned()
                .collect();
            let found: Vec<_> = if !cname.is_empty() && qtype != RecordType::CNAME {
                cname
            } else {
                recs.iter().filter(|r| r.matches(qtype)).cloned().collect()
            };
            if found.is_empty() {
                return Answer::NoData;
            }
            return Answer::Records(found.into_iter().map(|r| (name.clone(), r)).collect());
        }
        if self.interior.contains(&name) {
            return Answer::NoData;
        }
        // a-b-c-d.NS.pod.DOMAIN
        if let Some(rest) = name.strip_suffix(&format!(".pod.{}", self.domain))
            && let Some((host, ns)) = rest.split_once('.')
            && !ns.contains('.')
            && let Ok(ip) = host.replace('-', ".").parse::<Ipv4Addr>()
        {
            return if matches!(qtype, RecordType::A | RecordType::ANY) {
                Answer::Records(vec![(name.clone(), Rec::A(ip))])
            } else {
                Answer::NoData
            };
        }
        Answer::NxDomain
    }
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).ok()
}

fn to_record(owner: &str, rec: &Rec) -> Option<Record> {
    let name = fqdn(owner)?;
    let data = match rec {
        Rec::A(a) => RData::A(A(*a)),
        Rec::Aaaa(a) => RData::AAAA(AAAA(*a)),
        Rec::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
        Rec::Ptr(t) => RData::PTR(PTR(fqdn(t)?)),
        Rec::Srv { port, target } => RData::SRV(SRV::new(0, 100, *port, fqdn(target)?)),
    };
    Some(Record::from_rdata(name, TTL, data))
}

fn soa(domain: &str, serial: u32) -> Option<Record> {
    let data = SOA::new(
        fqdn(&format!("ns.dns.{domain}"))?,
        fqdn(&format!("hostmaster.{domain}"))?,
        serial,
        7200,
        1800,
        86400,
        TTL,
    );
    Some(Record::from_rdata(fqdn(domain)?, TTL, RData::SOA(data)))
}

/// The zone as the handler sees it, swapped whole on each change.
#[derive(Default)]
struct Shared {
    zone: Arc<Zone>,
    serial: u32,
    /// False until the first full list: then every answer is SERVFAIL (retry), not a
    /// false NXDOMAIN.
    ready: bool,
}

/// One response's content.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    /// An answer without records.
    fn empty(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: false,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
        }
    }
}

struct Handler {
    shared: Arc<RwLock<Shared>>,
    upstream: Vec<SocketAddr>,
}

/// How long one forwarded query may take, all upstreams together. Stub resolvers
/// (glibc, musl, busybox) wait 5 s before they ask again, and many callers give up
/// sooner: an unreachable upstream must turn into a SERVFAIL within that time, not into
/// silence that leaves the client hanging.
const FORWARD_BUDGET: Duration = Duration::from_secs(4);

/// Sends `raw` (a whole DNS message) to the first upstream that answers within
/// [`FORWARD_BUDGET`] (shared out among the upstreams not yet tried).
async fn forward(raw: &[u8], upstream: &[SocketAddr], tcp: bool) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + FORWARD_BUDGET;
    for (i, server) in upstream.iter().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // An upstream that fails fast (refused) leaves its share to the next ones.
        let share = left / u32::try_from(upstream.len() - i).unwrap_or(u32::MAX);
        if share.is_zero() {
            break;
        }
        let attempt = async {
            if tcp {
                forward_tcp(raw, *server).await
            } else {
                let reply = forward_udp(raw, *server).await?;
                // Truncated: ask again over TCP for the whole answer.
                if reply.len() > 2 && reply[2] & 0x02 != 0 {
                    return forward_tcp(raw, *server).await;
                }
                Ok(reply)
            }
        };
        match tokio::time::timeout(share, attempt).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => tracing::debug!("dns: upstream {server} failed: {e}"),
            Err(_) => tracing::debug!("dns: upstream {server} timed out after {share:?}"),
        }
    }
    None
}

async fn forward_udp(raw: &[u8], server: SocketAddr) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    sock.send(raw).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Same id: ours (a stray datagram is ignored).
        if n >= 2 && raw.len() >= 2 && buf[..2] == raw[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn forward_tcp(raw: &[u8], server: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(server).await?;
    let len = u16::try_from(raw.len()).map_err(std::io::Error::other)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(raw).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

fn failed(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

impl Handler {
    async fn respond<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        reply: Reply,
    ) -> ResponseInfo {
        let Reply {
            code,
            authoritative,
            answers,
            authorities,
            additionals,
        } = reply;
        let edns = request.edns.as_ref().map(|e| {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload().clamp(512, 1232));
            out
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = code;
        metadata.authoritative = authoritative;
        metadata.recursion_available = !self.upstream.is_empty();
        let response = builder.build(
            metadata,
            answers.iter(),
            authorities.iter(),
            std::iter::empty(),
            additionals.iter(),
        );
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("dns: cannot send a response: {e}");
                failed(request, ResponseCode::ServFail)
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        handle: R,
    ) -> ResponseInfo {
        let Ok(info) = request.request_info() else {
            return self
                .respond(request, handle, Reply::empty(ResponseCode::FormErr))
                .await;
        };
        let qname = info.query.name().to_string();
        let qtype = info.query.query_type();
        let (zone, serial, ready) = {
            let s = self.shared.read().unwrap_or_else(|e| e.into_inner());
            (s.zone.clone(), s.serial, s.ready)
        };
        if !ready {
            return self
                .respond(request, handle, Reply::empty(ResponseCode::ServFail))
                .await;
        }
        let soa_rec = || soa(zone.domain(), serial).into_iter().collect::<Vec<_>>();
        match zone.lookup(&qname, qtype) {
            Answer::Records(recs) => {
                let answers: Vec<Record> =
                    recs.iter().filter_map(|(n, r)| to_record(n, r)).collect();
                // SRV targets' addresses, so clients need no second query.
                let mut additionals = Vec::new();
                for (_, r) in &recs {
                    if let Rec::Srv { target, .. } = r
                        && let Answer::Records(addrs) = zone.lookup(target, RecordType::A)
                    {
                        additionals.extend(addrs.iter().filter_map(|(n, r)| to_record(n, r)));
                    }
                }
                self.respond(
                    request,
                    handle,
                    Reply {
                        code: ResponseCode::NoError,
                        authoritative: true,
                        answers,
                        authorities: vec![],
                        additionals,
                    },
                )
                .await
            }
            Answer::NoData => {
                self.respond(
                    request,
                    handle,
                    Reply {
                        code: ResponseCode::NoError,
                        authoritative: true,
                        answers: vec![],
                        authorities: soa_rec(),
                        additionals: vec![],
                    },
                )
                .await
            }
            Answer::NxDomain => {
                self.respond(
                    request,
                    handle,
                    Reply {
                        code: ResponseCode::NXDomain,
                        authoritative: true,
                        answers: vec![],
                        authorities: soa_rec(),
                        additionals: vec![],
                    },
                )
                .await
            }
            Answer::NotOurs => {
                let tcp = matches!(request.protocol(), hickory_server::net::xfer::Protocol::Tcp);
                let reply = forward(request.as_slice(), &self.upstream, tcp).await;
                let Some(msg) = reply.and_then(|r| Message::from_vec(&r).ok()) else {
                    return self
                        .respond(request, handle, Reply::empty(ResponseCode::ServFail))
                        .await;
                };
                let code = msg.metadata.response_code;
                self.respond(
                    request,
                    handle,
                    Reply {
                        code,
                        authoritative: false,
                        answers: msg.answers,
                        authorities: msg.authorities,
                        additionals: msg.additionals,
                    },
                )
                .await
            }
        }
    }
}

/// Binds `cfg.listen` (UDP and TCP) and serves until dropped: see [`serve_dns_on`].
pub async fn serve_dns(client: client::Client, cfg: DnsConfig) -> Result<(), ProxyError> {
    let udp = tokio::net::UdpSocket::bind(cfg.listen)
        .await
        .map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let tcp = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
    serve_dns_on(client, cfg, udp, tcp).await
}

/// Serves DNS on already bound sockets (`cfg.listen` is ignored) until dropped: the
/// answers follow the Service and EndpointSlice watches within about 50 ms.
pub async fn serve_dns_on(
    client: client::Client,
    cfg: DnsConfig,
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
) -> Result<(), ProxyError> {
    let shared = Arc::new(RwLock::new(Shared::default()));
    // Never forward to ourselves (a resolv.conf naming this very address would loop).
    let mut upstream = cfg.upstream.clone();
    if let (Ok(u), Ok(t)) = (udp.local_addr(), tcp.local_addr()) {
        upstream.retain(|a| *a != u && *a != t);
    }
    let (cluster, mut events) = watch::watch(&client, "dns").await;
    let mut server = hickory_server::Server::new(Handler {
        shared: shared.clone(),
        upstream,
    });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 64 * 1024);
    let domain = cfg.cluster_domain.clone();
    let follow = async move {
        let mut serial = 0u32;
        loop {
            if cluster.is_ready() {
                let (services, slices) = cluster.snapshot();
                let zone = Zone::build(&domain, &services, &slices);
                serial = serial.wrapping_add(1);
                let mut s = shared.write().unwrap_or_else(|e| e.into_inner());
                s.zone = Arc::new(zone);
                s.serial = serial;
                s.ready = true;
            }
            // Wait for a change, then let a burst settle.
            if events.next().await.is_none() {
                std::future::pending::<()>().await;
            }
            let settle = tokio::time::sleep(Duration::from_millis(50));
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = &mut settle => break,
                    e = events.next() => if e.is_none() { break },
                }
            }
        }
    };
    // The follower polls the watches (which fills the caches) alongside the server.
    tokio::select! {
        r = server.block_until_done() => Err(ProxyError::Dns(match r {
            Ok(()) => "all listeners closed".to_string(),
            Err(e) => e.to_string(),
        })),
        () = follow => Ok(()),
    }
}

#[cfg(test)]
mod tests;
