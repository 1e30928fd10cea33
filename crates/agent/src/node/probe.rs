//! Liveness, readiness and startup probes: one task per probe runs it on its period
//! and reports when the result crosses its success or failure threshold.

use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Restart the container when it fails.
    Liveness,
    /// Gate the Ready condition (and Service endpoints).
    Readiness,
    /// Hold the other probes until the container has started.
    Startup,
}

impl Kind {
    /// The spec field (`livenessProbe` ...).
    pub fn field(self) -> &'static str {
        match self {
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Startup => "startupProbe",
        }
    }
    /// As in events ("Liveness probe failed: ...").
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// What one probe does and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// httpGet, tcpSocket or exec.
    pub action: Action,
    /// initialDelaySeconds.
    pub initial_delay: Duration,
    /// periodSeconds (default 10).
    pub period: Duration,
    /// timeoutSeconds (default 1).
    pub timeout: Duration,
    /// successThreshold (default 1).
    pub success_threshold: u32,
    /// failureThreshold (default 3).
    pub failure_threshold: u32,
}

/// The check itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// GET http(s)://host:port/path; 200–399 passes.
    Http {
        /// Host (default: the pod IP).
        host: Option<String>,
        /// Port number.
        port: u16,
        /// Path with query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// A TCP connect passes.
    Tcp {
        /// Host (default: the pod IP).
        host: Option<String>,
        /// Port.
        port: u16,
    },
    /// Exit code 0 passes.
    Exec {
        /// argv.
        command: Vec<String>,
    },
}

/// A port given by number or by the container's port name.
fn port(v: &Value, container: &Value) -> Option<u16> {
    if let Some(n) = v.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = v.as_str()?;
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

/// Parses the container's probe of this kind, None if it has none (or it is malformed).
pub fn parse(container: &Value, kind: Kind) -> Option<Probe> {
    let p = container.get(kind.field()).filter(|p| p.is_object())?;
    let secs = |f: &str, d: u64| Duration::from_secs(p[f].as_u64().unwrap_or(d));
    let count = |f: &str, d: u32| {
        p[f].as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(d)
            .max(1)
    };
    let action = if p["httpGet"].is_object() {
        let h = &p["httpGet"];
        Action::Http {
            host: h["host"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            port: port(&h["port"], container)?,
            path: h["path"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("/")
                .to_string(),
            headers: h["httpHeaders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| {
                    Some((
                        x["name"].as_str()?.to_string(),
                        x["value"].as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect(),
        }
    } else if p["tcpSocket"].is_object() {
        Action::Tcp {
            host: p["tcpSocket"]["host"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            port: port(&p["tcpSocket"]["port"], container)?,
        }
    } else if p["exec"].is_object() {
        Action::Exec {
            command: p["exec"]["command"]
                .as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        }
    } else {
        return None;
    };
    Some(Probe {
        action,
        initial_delay: secs("initialDelaySeconds", 0),
        period: secs("periodSeconds", 10).max(Duration::from_secs(1)),
        timeout: secs("timeoutSeconds", 1).max(Duration::from_secs(1)),
        success_threshold: if kind == Kind::Readiness {
            count("successThreshold", 1)
        } else {
            1
        },
        failure_threshold: count("failureThreshold", 3),
    })
}

/// One probe attempt's result, with the message for events.
pub type Outcome = Result<(), String>;

/// One HTTP GET (plain HTTP/1.1, `Connection: close`), passing on 200–399.
pub async fn http_get(
    ip: IpAddr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| format!("Get \"http://{ip}:{port}{path}\": dial tcp {ip}:{port}: {e}"))?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed HTTP response from {ip}:{port}"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("Get \"http://{ip}:{port}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")))
}

/// One TCP connect.
pub async fn tcp_connect(ip: IpAddr, port: u16, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {ip}:{port}: connect: {e}")),
        Err(_) => Err(format!("dial tcp {ip}:{port}: i/o timeout")),
    }
}

/// Counts consecutive results against the thresholds.
#[derive(Debug, Clone)]
pub struct Tracker {
    successes: u32,
    failures: u32,
    /// The last result reported (None before the first threshold crossing).
    pub state: Option<bool>,
}

impl Tracker {
    /// A tracker with no result yet.
    pub fn new() -> Tracker {
        Tracker {
            successes: 0,
            failures: 0,
            state: None,
        }
    }

    /// Records one attempt; returns the new state when it changed.
    pub fn record(&mut self, probe: &Probe, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= probe.success_threshold && self.state != Some(true) {
                self.state = Some(true);
                return Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= probe.failure_threshold && self.state != Some(false) {
                self.state = Some(false);
                return Some(false);
            }
        }
        None
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_probes_with_defaults_and_named_ports() {
        let c = json!({"ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "/healthz"}, "periodSeconds": 2, "successThreshold": 2},
            "livenessProbe": {"tcpSocket": {"port": 9000}, "successThreshold": 5},
            "startupProbe": {"exec": {"command": ["cat", "/tmp/ok"]}, "failureThreshold": 30}});
        let r = parse(&c, Kind::Readiness).unwrap();
        assert_eq!(
            r.action,
            Action::Http {
                host: None,
                port: 8080,
                path: "/healthz".into(),
                headers: vec![]
            }
        );
        assert_eq!(
            (
                r.period,
                r.timeout,
                r.success_threshold,
                r.failure_threshold
            ),
            (Duration::from_secs(2), Duration::from_secs(1), 2, 3)
        );
        let l = parse(&c, Kind::Liveness).unwrap();
        assert_eq!(
            l.action,
            Action::Tcp {
                host: None,
                port: 9000
            }
        );
        assert_eq!(l.success_threshold, 1);
        assert_eq!(parse(&c, Kind::Startup).unwrap().failure_threshold, 30);
        assert!(parse(&json!({}), Kind::Liveness).is_none());
    }

    #[test]
    fn thresholds() {
        let p = Probe {
            action: Action::Exec { command: vec![] },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 3,
        };
        let mut t = Tracker::new();
        assert_eq!(t.record(&p, true), None);
        assert_eq!(t.record(&p, true), Some(true));
        assert_eq!(t.record(&p, false), None);
        assert_eq!(t.record(&p, false), None);
        assert_eq!(t.record(&p, false), Some(false));
        assert_eq!(t.record(&p, false), None);
    }

    #[tokio::test]
    async fn http_and_tcp_checks_against_a_loopback_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.starts_with("GET /ok") {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            http_get(ip, port, "/ok", &[], Duration::from_secs(2))
                .await
                .is_ok()
        );
        let e = http_get(ip, port, "/bad", &[], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.contains("503"), "{e}");
        assert!(tcp_connect(ip, port, Duration::from_secs(2)).await.is_ok());
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(
            tcp_connect(ip, closed, Duration::from_secs(2))
                .await
                .is_err()
        );
    }
}
