//! Running CNI plugins as processes (CNI spec 1.0.0) and reading their results.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::{NetError, PluginFailure};

/// The CNI spec version of the configurations we hand to the plugins (1.1.1 plugins support it).
pub(crate) const CNI_VERSION: &str = "1.0.0";

/// The plugins a sandbox needs; host-local is run by bridge, found through `CNI_PATH`. (What
/// the loopback plugin would do, setting `lo` up, is done when the namespace is made.)
pub(crate) const REQUIRED_PLUGINS: [&str; 3] = ["bridge", "host-local", "portmap"];

/// Located plugin binaries and the `CNI_PATH` to give them.
#[derive(Debug)]
pub(crate) struct Plugins {
    pub bridge: PathBuf,
    pub portmap: PathBuf,
    cni_path: OsString,
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Plugins {
    /// Finds every required plugin in `dirs` (first directory wins, like `CNI_PATH`).
    pub fn find(dirs: &[PathBuf]) -> Result<Self, NetError> {
        let find = |name: &str| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
                .ok_or_else(|| NetError::PluginMissing {
                    plugin: name.to_owned(),
                    dirs: dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        };
        for name in REQUIRED_PLUGINS {
            find(name)?;
        }
        let cni_path = std::env::join_paths(dirs).map_err(|e| {
            NetError::InvalidConfig(format!("CNI plugin directories cannot form CNI_PATH: {e}"))
        })?;
        Ok(Self {
            bridge: find("bridge")?,
            portmap: find("portmap")?,
            cni_path,
        })
    }
}

/// One plugin invocation.
pub(crate) struct Invocation<'a> {
    pub plugin: &'a Path,
    pub command: &'static str,
    pub container_id: &'a str,
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub config: &'a Value,
}

/// The error object a failing plugin prints on stdout.
#[derive(Deserialize)]
struct CniErrorJson {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// `PATH` for the plugins: portmap runs `iptables`, which lives in sbin directories that a
/// non-login environment may lack.
fn plugin_path_env() -> OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let extra = PathBuf::from(extra);
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
}

impl Plugins {
    /// Runs one plugin; returns its parsed stdout (the result for ADD, `None` when empty).
    pub async fn exec(&self, inv: Invocation<'_>) -> Result<Option<Value>, NetError> {
        let name = inv
            .plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| inv.plugin.display().to_string());
        let stdin_data = serde_json::to_vec(inv.config).map_err(|e| {
            NetError::InvalidConfig(format!("serialising the {name} configuration: {e}"))
        })?;
        let mut cmd = tokio::process::Command::new(inv.plugin);
        cmd.env("CNI_COMMAND", inv.command)
            .env("CNI_CONTAINERID", inv.container_id)
            .env(
                "CNI_NETNS",
                inv.netns.map(Path::as_os_str).unwrap_or_default(),
            )
            .env("CNI_IFNAME", inv.ifname)
            .env("CNI_PATH", &self.cni_path)
            .env("PATH", plugin_path_env())
            .env_remove("CNI_ARGS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        tracing::debug!(plugin = %name, command = inv.command, container = inv.container_id, "running CNI plugin");
        let mut child = cmd.spawn().map_err(|source| NetError::PluginSpawn {
            plugin: name.clone(),
            source,
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin that exits before reading its config makes this fail; its exit status and
            // error output below say why, so the write error itself is not interesting.
            let _ = stdin.write_all(&stdin_data).await;
            drop(stdin);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| NetError::PluginSpawn {
                plugin: name.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !out.status.success() {
            let parsed: Option<CniErrorJson> = serde_json::from_str(stdout.trim()).ok();
            let (code, msg, details) = match parsed {
                Some(e) => (e.code, e.msg, e.details),
                None => (None, stdout.trim().to_owned(), String::new()),
            };
            return Err(NetError::Plugin(Box::new(PluginFailure {
                plugin: name,
                command: inv.command,
                status: out.status.to_string(),
                code,
                msg,
                details,
                stderr,
            })));
        }
        if !stderr.is_empty() {
            tracing::debug!(plugin = %name, command = inv.command, %stderr, "CNI plugin stderr");
        }
        if stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(stdout.trim())
            .map(Some)
            .map_err(|source| NetError::PluginOutput {
                plugin: name,
                output: stdout.into_owned(),
                source,
            })
    }
}

#[derive(Deserialize)]
struct CniResult {
    #[serde(default)]
    interfaces: Vec<CniInterface>,
    #[serde(default)]
    ips: Vec<CniIp>,
}

#[derive(Deserialize)]
struct CniInterface {
    name: String,
    #[serde(default)]
    sandbox: Option<String>,
}

#[derive(Deserialize)]
struct CniIp {
    address: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    interface: Option<usize>,
}

/// The pod's IPv4 address (with prefix) and gateway from a CNI 1.0 result: the first IPv4 entry on
/// `ifname` inside the sandbox (entries without an interface index count too).
pub(crate) fn pod_address(
    result: &Value,
    ifname: &str,
) -> Result<(Ipv4Net, Option<Ipv4Addr>), NetError> {
    let bad = |why: String| NetError::BadResult {
        why,
        result: result.to_string(),
    };
    let parsed: CniResult =
        serde_json::from_value(result.clone()).map_err(|e| bad(format!("unparsable: {e}")))?;
    for ip in &parsed.ips {
        if let Some(idx) = ip.interface {
            match parsed.interfaces.get(idx) {
                Some(i)
                    if i.name == ifname && i.sandbox.as_deref().is_some_and(|s| !s.is_empty()) => {}
                _ => continue,
            }
        }
        let Ok(addr) = ip.address.parse::<Ipv4Net>() else {
            continue; // IPv6 or garbage: we only do IPv4
        };
        let gateway = match &ip.gateway {
            Some(g) => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|e| bad(format!("gateway {g:?}: {e}")))?,
            ),
            None => None,
        };
        return Ok((addr, gateway));
    }
    Err(bad(format!("no IPv4 address for interface {ifname}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bridge_result() {
        let v: Value = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"br0","mac":"aa"},{"name":"veth1","mac":"bb"},
            {"name":"eth0","mac":"cc","sandbox":"/run/netns/x"}],
            "ips":[{"interface":2,"address":"10.88.0.5/24","gateway":"10.88.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#,
        )
        .unwrap();
        let (addr, gw) = pod_address(&v, "eth0").unwrap();
        assert_eq!(addr, "10.88.0.5/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(gw, Some(Ipv4Addr::new(10, 88, 0, 1)));
    }

    #[test]
    fn skips_host_side_and_ipv6_addresses() {
        let v: Value = serde_json::from_str(
            r#"{"interfaces":[{"name":"br0"},{"name":"eth0","sandbox":"/run/netns/x"}],
            "ips":[{"interface":0,"address":"10.1.0.1/24"},{"interface":1,"address":"fd00::2/64"},
                   {"interface":1,"address":"10.1.0.7/24"}]}"#,
        )
        .unwrap();
        let (addr, gw) = pod_address(&v, "eth0").unwrap();
        assert_eq!(addr.addr(), Ipv4Addr::new(10, 1, 0, 7));
        assert_eq!(gw, None);
    }

    #[test]
    fn result_without_ipv4_is_an_error() {
        let v: Value = serde_json::from_str(r#"{"ips":[]}"#).unwrap();
        let err = pod_address(&v, "eth0").unwrap_err().to_string();
        assert!(err.contains("no IPv4 address"), "{err}");
    }
}
