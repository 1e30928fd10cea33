//! [`ContainerSpec`] → OCI runtime spec (config.json), with Docker/containerd defaults.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::{ContainerSpec, MountKind, RuntimeError};

/// The capabilities containers get unless privileged (Docker's and containerd's default set).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability Linux defines (runc ignores the ones the kernel lacks).
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn oci(e: oci_spec::OciSpecError) -> RuntimeError {
    RuntimeError::InvalidSpec(e.to_string())
}

/// Parses "NET_ADMIN" / "cap_net_admin" into oci-spec's enum.
fn parse_cap(name: &str) -> Result<Capability, RuntimeError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare)
        .map_err(|_| RuntimeError::InvalidSpec(format!("unknown capability {name:?}")))
}

fn all_caps() -> HashSet<Capability> {
    ALL_CAPABILITIES
        .iter()
        .filter_map(|c| Capability::from_str(c).ok())
        .collect()
}

/// The effective capability set: base (default or all) → "ALL" add/drop → specific adds → specific drops.
fn capability_set(spec: &ContainerSpec) -> Result<HashSet<Capability>, RuntimeError> {
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    let mut caps: HashSet<Capability> = if spec.privileged {
        all_caps()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| parse_cap(c))
            .collect::<Result<_, _>>()?
    };
    if spec.capabilities_add.iter().any(is_all) {
        caps = all_caps();
    }
    if spec.capabilities_drop.iter().any(is_all) {
        caps.clear();
    }
    for add in spec.capabilities_add.iter().filter(|c| !is_all(c)) {
        caps.insert(parse_cap(add)?);
    }
    for drop in spec.capabilities_drop.iter().filter(|c| !is_all(c)) {
        caps.remove(&parse_cap(drop)?);
    }
    Ok(caps)
}

/// Checks an id is safe as a file name, runc id and cgroup name.
pub(crate) fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidSpec(format!(
            "container id {id:?} must be 1-64 characters of [A-Za-z0-9_.-] starting with a letter or digit"
        )))
    }
}

fn mount(
    dest: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<oci_spec::runtime::Mount, RuntimeError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(oci)
}

/// Builds the OCI runtime spec for `spec`. Pure: touches no files.
///
/// No rlimits are set (the container inherits the agent's, and runc cannot raise them here);
/// no seccomp profile is applied.
pub fn build_spec(spec: &ContainerSpec) -> Result<Spec, RuntimeError> {
    validate_id(&spec.id)?;
    if spec.args.is_empty() {
        return Err(RuntimeError::InvalidSpec(format!(
            "container {} has no command (args is empty)",
            spec.id
        )));
    }
    if !spec.rootfs.is_absolute() {
        return Err(RuntimeError::InvalidSpec(format!(
            "rootfs {} must be an absolute path",
            spec.rootfs.display()
        )));
    }
    for e in &spec.env {
        if !e.contains('=') {
            return Err(RuntimeError::InvalidSpec(format!(
                "environment entry {e:?} is not K=V"
            )));
        }
    }

    // Process.
    let mut env = spec.env.clone();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    if !spec.hostname.is_empty() && !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    if spec.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".to_string());
    }
    let caps = capability_set(spec)?;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(oci)?;
    let user = UserBuilder::default()
        .uid(spec.uid)
        .gid(spec.gid)
        .additional_gids(spec.additional_gids.clone())
        .build()
        .map_err(oci)?;
    let cwd = if spec.cwd.is_empty() {
        "/".to_string()
    } else {
        spec.cwd.clone()
    };
    if !cwd.starts_with('/') {
        return Err(RuntimeError::InvalidSpec(format!(
            "working directory {cwd:?} must be absolute"
        )));
    }
    let mut process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(user)
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(spec.no_new_privileges)
        .build()
        .map_err(oci)?;
    // The builder starts from oci-spec's defaults, which include RLIMIT_NOFILE.
    process.set_rlimits(None);

    // Mounts: defaults, then the caller's (a caller mount replaces a default at the same destination).
    let sys_opts: &[&str] = if spec.privileged {
        &["nosuid", "noexec", "nodev", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let cgroup_opts: &[&str] = if spec.privileged {
        &["nosuid", "noexec", "nodev", "relatime", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "relatime", "ro"]
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount("/sys", "sysfs", "sysfs", sys_opts)?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts)?,
    ];
    for m in &spec.mounts {
        if !m.destination.starts_with('/') {
            return Err(RuntimeError::InvalidSpec(format!(
                "mount destination {:?} must be absolute",
                m.destination
            )));
        }
        let dest = m.destination.trim_end_matches('/');
        let dest = if dest.is_empty() { "/" } else { dest };
        mounts.retain(|d| d.destination() != &PathBuf::from(dest));
        let ro = if m.readonly { "ro" } else { "rw" };
        let built = match &m.kind {
            MountKind::Bind => {
                if !m.source.is_absolute() {
                    return Err(RuntimeError::InvalidSpec(format!(
                        "bind mount source {} must be absolute",
                        m.source.display()
                    )));
                }
                MountBuilder::default()
                    .destination(dest)
                    .typ("bind")
                    .source(m.source.clone())
                    .options(vec![
                        "rbind".to_string(),
                        "rprivate".to_string(),
                        ro.to_string(),
                    ])
                    .build()
                    .map_err(oci)?
            }
            MountKind::Tmpfs { size_bytes } => {
                let mut opts = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "mode=1777".to_string(),
                    ro.to_string(),
                ];
                if let Some(size) = size_bytes {
                    opts.push(format!("size={size}"));
                }
                MountBuilder::default()
                    .destination(dest)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(opts)
                    .build()
                    .map_err(oci)?
            }
        };
        mounts.push(built);
    }

    // Namespaces.
    let ns = |typ: LinuxNamespaceType, path: Option<&PathBuf>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p.clone()).build(),
            None => b.build(),
        }
        .map_err(oci)
    };
    let namespaces = vec![
        ns(LinuxNamespaceType::Pid, None)?,
        ns(LinuxNamespaceType::Network, spec.netns.as_ref())?,
        ns(LinuxNamespaceType::Ipc, spec.ipc_ns.as_ref())?,
        ns(LinuxNamespaceType::Uts, None)?,
        ns(LinuxNamespaceType::Mount, None)?,
    ];

    // Resources.
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(s) = spec.cpu_shares {
        cpu = cpu.shares(s);
    }
    if let Some(q) = spec.cpu_quota {
        cpu = cpu.quota(q);
    }
    if let Some(p) = spec.cpu_period {
        cpu = cpu.period(p);
    }
    let mut resources = LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(spec.privileged)
                .access("rwm")
                .build()
                .map_err(oci)?,
        ])
        .cpu(cpu.build().map_err(oci)?);
    if let Some(limit) = spec.memory_limit {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(oci)?,
        );
    }
    let cgroup_path = spec.cgroup_path.clone().unwrap_or_default();
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(oci)?);
    if !cgroup_path.is_empty() {
        linux = linux.cgroups_path(PathBuf::from(cgroup_path));
    }
    let (masked, readonly): (&[&str], &[&str]) = if spec.privileged {
        (&[], &[])
    } else {
        (MASKED_PATHS, READONLY_PATHS)
    };
    linux = linux
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>());

    let root = RootBuilder::default()
        .path(spec.rootfs.clone())
        .readonly(spec.readonly_rootfs)
        .build()
        .map_err(oci)?;
    let mut builder = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(root)
        .process(process)
        .mounts(mounts)
        .linux(linux.build().map_err(oci)?);
    // Like Docker: without a hostname the container is named after its id (not the host).
    let hostname = if spec.hostname.is_empty() {
        spec.id.clone()
    } else {
        spec.hostname.clone()
    };
    builder = builder.hostname(hostname);
    builder.build().map_err(oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            rootfs: "/tmp/rootfs".into(),
            args: vec!["sh".into()],
            ..Default::default()
        }
    }

    fn caps_of(spec: &Spec) -> HashSet<Capability> {
        spec.process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap()
    }

    #[test]
    fn default_caps_and_no_rlimits() {
        let s = build_spec(&base()).unwrap();
        let caps = caps_of(&s);
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
        assert!(caps.contains(&Capability::Chown));
        assert!(!caps.contains(&Capability::SysAdmin));
        assert!(s.process().as_ref().unwrap().rlimits().is_none());
        let env = s.process().as_ref().unwrap().env().clone().unwrap();
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        assert!(
            s.linux()
                .as_ref()
                .unwrap()
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_string())
        );
    }

    #[test]
    fn capability_add_drop() {
        let mut c = base();
        c.capabilities_drop = vec!["ALL".into()];
        c.capabilities_add = vec!["cap_net_admin".into()];
        assert_eq!(
            caps_of(&build_spec(&c).unwrap()),
            HashSet::from([Capability::NetAdmin])
        );
        c.capabilities_drop = vec!["CHOWN".into()];
        c.capabilities_add = vec![];
        let caps = caps_of(&build_spec(&c).unwrap());
        assert!(!caps.contains(&Capability::Chown) && caps.contains(&Capability::Kill));
        c.capabilities_add = vec!["BOGUS".into()];
        assert!(matches!(build_spec(&c), Err(RuntimeError::InvalidSpec(_))));
    }

    #[test]
    fn mounts_override_defaults_and_namespaces_join() {
        let mut c = base();
        c.netns = Some("/run/netns/x".into());
        c.mounts = vec![crate::Mount {
            destination: "/dev/shm".into(),
            source: "/host/shm".into(),
            readonly: false,
            kind: MountKind::Bind,
        }];
        let s = build_spec(&c).unwrap();
        let shm: Vec<_> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|m| m.destination() == &PathBuf::from("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].typ().as_deref(), Some("bind"));
        let net = s
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap()
            .clone();
        assert_eq!(net.path().as_ref().unwrap(), &PathBuf::from("/run/netns/x"));
    }

    #[test]
    fn bad_ids_rejected() {
        for id in ["", "../x", "a/b", "-x"] {
            let mut c = base();
            c.id = id.into();
            assert!(build_spec(&c).is_err(), "{id}");
        }
    }
}
