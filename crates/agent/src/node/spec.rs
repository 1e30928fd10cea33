//! Pure translation of a pod's container (plus its image's config) into what the
//! runtime runs: the argv by Kubernetes' command/args rules, the environment, the
//! user, cgroup figures from requests and limits, the security context and mounts.

use api::quantity::Quantity;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The CFS period Kubernetes uses (100 ms), so limits read the same as on a kubelet.
pub const CPU_PERIOD_US: u64 = 100_000;

/// What the image says about running it (the parts the agent needs).
#[derive(Debug, Clone, Default)]
pub struct ImageDefaults {
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV as `K=V`.
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: String,
    /// USER (`uid[:gid]` or a name).
    pub user: String,
}

/// Why a container cannot be built (surfaces as CreateContainerConfigError).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// Neither the pod nor the image names a program.
    #[error(
        "no command specified: the image has no entrypoint or cmd and the container sets no command"
    )]
    NoCommand,
    /// A quantity does not parse.
    #[error("invalid quantity {value:?} for {what}")]
    Quantity {
        /// Which figure.
        what: String,
        /// The text.
        value: String,
    },
    /// The image's USER names someone the image's /etc/passwd does not know.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A volumeMount names a volume the pod does not have (or that failed).
    #[error("volume {0:?} is not available for this container")]
    MissingVolume(String),
    /// A subPath that escapes its volume.
    #[error("subPath {0:?} must be a relative path without '..'")]
    BadSubPath(String),
}

/// The resolved argv: Kubernetes' rules (command replaces ENTRYPOINT and drops CMD;
/// args alone replace CMD), then `$(VAR)` expansion from the environment.
pub fn argv(
    container: &Value,
    image: &ImageDefaults,
    env: &[(String, String)],
) -> Result<Vec<String>, SpecError> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    };
    let command = strings(&container["command"]).filter(|c| !c.is_empty());
    let args = strings(&container["args"]).filter(|a| !a.is_empty());
    let mut argv = match (command, args) {
        (Some(c), Some(a)) => [c, a].concat(),
        (Some(c), None) => c,
        (None, Some(a)) => [image.entrypoint.clone(), a].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let vars: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for a in &mut argv {
        *a = expand(a, &vars);
    }
    Ok(argv)
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
/// anything else stays as written.
pub fn expand(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The environment: the image's, then the container's resolved variables (later wins,
/// order of first appearance kept), as `K=V`.
pub fn environment(image: &ImageDefaults, resolved: &[(String, String)]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let parsed = image.env.iter().filter_map(|kv| {
        kv.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
    });
    for (k, v) in parsed.chain(resolved.iter().cloned()) {
        if !values.contains_key(&k) {
            order.push(k.clone());
        }
        values.insert(k, v);
    }
    if !values.contains_key("PATH") {
        order.insert(0, "PATH".into());
        values.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", values[&k]))
        .collect()
}

/// The process's user and groups: the security context (container over pod) first,
/// then the image's USER (names looked up in the image's /etc/passwd and /etc/group).
pub fn user(
    pod_spec: &Value,
    container: &Value,
    image: &ImageDefaults,
    rootfs: &Path,
) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let pick = |field: &str| -> Option<u32> {
        container["securityContext"][field]
            .as_u64()
            .or_else(|| pod_spec["securityContext"][field].as_u64())
            .and_then(|n| u32::try_from(n).ok())
    };
    let (mut uid, mut gid) = (0u32, None::<u32>);
    if !image.user.is_empty() {
        let (u, g) = image
            .user
            .split_once(':')
            .map_or((image.user.as_str(), None), |(u, g)| (u, Some(g)));
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
        match u.parse::<u32>() {
            Ok(n) => uid = n,
            Err(_) => {
                let entry = passwd
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 3 && f[0] == u)
                    .ok_or_else(|| SpecError::UnknownUser(u.to_string()))?;
                uid = entry[2]
                    .parse()
                    .map_err(|_| SpecError::UnknownUser(u.to_string()))?;
                gid = entry[3].parse().ok();
            }
        }
        if let Some(g) = g {
            gid = match g.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => std::fs::read_to_string(rootfs.join("etc/group"))
                    .unwrap_or_default()
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 2 && f[0] == g)
                    .and_then(|f| f[2].parse().ok()),
            };
        }
    }
    if let Some(u) = pick("runAsUser") {
        uid = u;
    }
    if let Some(g) = pick("runAsGroup") {
        gid = Some(g);
    }
    let mut groups: Vec<u32> = pod_spec["securityContext"]["supplementalGroups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(fs) = pod_spec["securityContext"]["fsGroup"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
    {
        groups.push(fs);
    }
    Ok((uid, gid.unwrap_or(0), groups))
}

/// Cgroup figures from requests and limits, as the kubelet computes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupFigures {
    /// cpu.shares: requests.cpu in millicores × 1024 / 1000 (minimum 2).
    pub cpu_shares: Option<u64>,
    /// cpu.cfs_quota_us from limits.cpu.
    pub cpu_quota: Option<i64>,
    /// cpu.cfs_period_us when a quota is set.
    pub cpu_period: Option<u64>,
    /// memory.limit_in_bytes from limits.memory.
    pub memory_limit: Option<i64>,
}

/// Requests and limits to cgroup figures.
pub fn cgroup_figures(container: &Value) -> Result<CgroupFigures, SpecError> {
    let q = |section: &str, name: &str| -> Result<Option<Quantity>, SpecError> {
        match container["resources"][section][name].as_str() {
            None => Ok(None),
            Some(s) => Quantity::parse(s)
                .map(Some)
                .map_err(|_| SpecError::Quantity {
                    what: format!("resources.{section}.{name}"),
                    value: s.to_string(),
                }),
        }
    };
    let cpu_request = q("requests", "cpu")?.or(q("limits", "cpu")?);
    let cpu_limit = q("limits", "cpu")?;
    let mem_limit = q("limits", "memory")?;
    let shares = cpu_request.map_or(2, |c| {
        u64::try_from(c.milli_value())
            .unwrap_or(0)
            .saturating_mul(1024)
            / 1000
    });
    let mut f = CgroupFigures {
        cpu_shares: Some(shares.max(2)),
        ..Default::default()
    };
    if let Some(limit) = cpu_limit {
        let quota = limit.milli_value().saturating_mul(CPU_PERIOD_US as i64) / 1000;
        f.cpu_quota = Some(quota.max(1000));
        f.cpu_period = Some(CPU_PERIOD_US);
    }
    f.memory_limit = mem_limit.map(|m| m.value()).filter(|m| *m > 0);
    Ok(f)
}

/// The security context's flags, container fields over pod fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// privileged.
    pub privileged: bool,
    /// readOnlyRootFilesystem.
    pub readonly_rootfs: bool,
    /// allowPrivilegeEscalation: false.
    pub no_new_privileges: bool,
    /// capabilities.add.
    pub add: Vec<String>,
    /// capabilities.drop.
    pub drop: Vec<String>,
}

/// Reads the container's securityContext.
pub fn security(container: &Value) -> Security {
    let sc = &container["securityContext"];
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Security {
        privileged: sc["privileged"].as_bool().unwrap_or(false),
        readonly_rootfs: sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
        no_new_privileges: sc["allowPrivilegeEscalation"].as_bool() == Some(false),
        add: list(&sc["capabilities"]["add"]),
        drop: list(&sc["capabilities"]["drop"]),
    }
}

/// One bind mount into a container: a volume (or a file the agent makes).
#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    /// Path in the container.
    pub destination: String,
    /// Path on the host.
    pub source: PathBuf,
    /// Mounted read-only.
    pub readonly: bool,
}

/// The container's volumeMounts resolved against the pod's prepared volumes
/// (`name → host directory`), subPath included.
pub fn volume_mounts(
    container: &Value,
    volumes: &BTreeMap<String, (PathBuf, bool)>,
) -> Result<Vec<BindMount>, SpecError> {
    let mut out = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let dest = m["mountPath"].as_str().unwrap_or_default();
        let (source, volume_readonly) = volumes
            .get(name)
            .ok_or_else(|| SpecError::MissingVolume(name.to_string()))?;
        let mut source = source.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            let p = Path::new(sub);
            if p.is_absolute()
                || p.components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(SpecError::BadSubPath(sub.to_string()));
            }
            source = source.join(p);
        }
        out.push(BindMount {
            destination: dest.to_string(),
            source,
            readonly: m["readOnly"].as_bool().unwrap_or(false) || *volume_readonly,
        });
    }
    Ok(out)
}

/// The pod's hostname (spec.hostname or the pod name, at most 63 characters).
pub fn hostname(pod: &Value) -> String {
    let h = pod["spec"]["hostname"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| pod["metadata"]["name"].as_str())
        .unwrap_or("pod");
    h.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The pod's /etc/hosts, as the kubelet writes it.
pub fn etc_hosts(pod: &Value, ip: &str) -> String {
    let host = hostname(pod);
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let fqdn = match (
        pod["spec"]["subdomain"].as_str(),
        pod["metadata"]["namespace"].as_str(),
    ) {
        (Some(sub), Some(ns)) if !sub.is_empty() => {
            format!("{host}.{sub}.{ns}.svc.cluster.local\t")
        }
        _ => String::new(),
    };
    s.push_str(&format!("{ip}\t{fqdn}{host}\n"));
    for alias in pod["spec"]["hostAliases"].as_array().into_iter().flatten() {
        let names: Vec<&str> = alias["hostnames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if let Some(aip) = alias["ip"].as_str() {
            s.push_str(&format!(
                "# Entries added by HostAliases.\n{aip}\t{}\n",
                names.join("\t")
            ));
        }
    }
    s
}

/// The pod's /etc/resolv.conf: cluster DNS when the agent knows it, else the host's.
pub fn resolv_conf(
    pod: &Value,
    cluster_dns: Option<&str>,
    cluster_domain: &str,
    host_resolv: &str,
) -> String {
    let mut policy = pod["spec"]["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
    // Host-network pods use the host's resolvers unless they ask for ClusterFirstWithHostNet.
    if policy == "ClusterFirst" && pod["spec"]["hostNetwork"].as_bool() == Some(true) {
        policy = "Default";
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    match (policy, cluster_dns) {
        ("ClusterFirst" | "ClusterFirstWithHostNet", Some(dns)) => format!(
            "search {ns}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}\nnameserver {dns}\noptions ndots:5\n"
        ),
        ("None", _) => {
            let cfg = &pod["spec"]["dnsConfig"];
            let mut s = String::new();
            let list = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let searches = list(&cfg["searches"]);
            if !searches.is_empty() {
                s.push_str(&format!("search {}\n", searches.join(" ")));
            }
            for n in list(&cfg["nameservers"]) {
                s.push_str(&format!("nameserver {n}\n"));
            }
            s
        }
        _ => host_resolv.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/bin".into(), "A=image".into()],
            working_dir: "/app".into(),
            user: String::new(),
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let img = image();
        let env = vec![("NAME".to_string(), "web".to_string())];
        assert_eq!(
            argv(&json!({}), &img, &env).unwrap(),
            ["/entry", "serve", "--port=80"]
        );
        assert_eq!(
            argv(&json!({"args": ["x"]}), &img, &env).unwrap(),
            ["/entry", "x"]
        );
        assert_eq!(
            argv(&json!({"command": ["sh"]}), &img, &env).unwrap(),
            ["sh"]
        );
        assert_eq!(
            argv(
                &json!({"command": ["sh", "-c"], "args": ["echo $(NAME) $$(NAME) $(NOPE)"]}),
                &img,
                &env
            )
            .unwrap(),
            ["sh", "-c", "echo web $(NAME) $(NOPE)"]
        );
        assert_eq!(
            argv(&json!({}), &ImageDefaults::default(), &env),
            Err(SpecError::NoCommand)
        );
    }

    #[test]
    fn container_env_overrides_image_env_in_order() {
        let env = environment(
            &image(),
            &[("A".into(), "pod".into()), ("B".into(), "b".into())],
        );
        assert_eq!(env, ["PATH=/bin", "A=pod", "B=b"]);
        let env = environment(&ImageDefaults::default(), &[]);
        assert!(env[0].starts_with("PATH=/usr/local/sbin"));
    }

    #[test]
    fn cgroups_from_requests_and_limits() {
        let c = json!({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}});
        assert_eq!(
            cgroup_figures(&c).unwrap(),
            CgroupFigures {
                cpu_shares: Some(256),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                memory_limit: Some(64 << 20)
            }
        );
        assert_eq!(cgroup_figures(&json!({})).unwrap().cpu_shares, Some(2));
        assert!(cgroup_figures(&json!({"resources": {"limits": {"memory": "lots"}}})).is_err());
    }

    #[test]
    fn users_from_security_context_and_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let mut img = image();
        img.user = "www".into();
        assert_eq!(
            user(&json!({}), &json!({}), &img, dir.path()).unwrap(),
            (33, 34, vec![])
        );
        img.user = "1000:staff".into();
        assert_eq!(
            user(&json!({}), &json!({}), &img, dir.path()).unwrap(),
            (1000, 50, vec![])
        );
        let pod =
            json!({"securityContext": {"runAsUser": 7, "fsGroup": 9, "supplementalGroups": [5]}});
        let c = json!({"securityContext": {"runAsUser": 8, "runAsGroup": 8}});
        assert_eq!(
            user(&pod, &c, &img, dir.path()).unwrap(),
            (8, 8, vec![5, 9])
        );
        img.user = "ghost".into();
        assert_eq!(
            user(&json!({}), &json!({}), &img, dir.path()),
            Err(SpecError::UnknownUser("ghost".into()))
        );
    }

    #[test]
    fn mounts_resolve_volumes_and_sub_paths() {
        let mut vols = BTreeMap::new();
        vols.insert("data".to_string(), (PathBuf::from("/v/data"), false));
        vols.insert("cfg".to_string(), (PathBuf::from("/v/cfg"), true));
        let c = json!({"volumeMounts": [
            {"name": "data", "mountPath": "/data", "subPath": "a/b"},
            {"name": "cfg", "mountPath": "/etc/cfg"},
        ]});
        let m = volume_mounts(&c, &vols).unwrap();
        assert_eq!(
            m[0],
            BindMount {
                destination: "/data".into(),
                source: "/v/data/a/b".into(),
                readonly: false
            }
        );
        assert!(m[1].readonly);
        let bad = json!({"volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "../x"}]});
        assert!(matches!(
            volume_mounts(&bad, &vols),
            Err(SpecError::BadSubPath(_))
        ));
        let missing = json!({"volumeMounts": [{"name": "nope", "mountPath": "/d"}]});
        assert!(matches!(
            volume_mounts(&missing, &vols),
            Err(SpecError::MissingVolume(_))
        ));
    }

    #[test]
    fn hosts_and_resolv() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "prod"}, "spec": {"hostname": "web", "subdomain": "svc1"}});
        let hosts = etc_hosts(&pod, "10.1.0.5");
        assert!(hosts.contains("10.1.0.5\tweb.svc1.prod.svc.cluster.local\tweb\n"));
        let r = resolv_conf(
            &pod,
            Some("10.96.0.10"),
            "cluster.local",
            "nameserver 1.1.1.1\n",
        );
        assert!(r.contains("search prod.svc.cluster.local svc.cluster.local cluster.local"));
        assert!(r.contains("nameserver 10.96.0.10"));
        assert_eq!(resolv_conf(&pod, None, "cluster.local", "host\n"), "host\n");
    }
}
