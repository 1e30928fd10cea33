//! Persistent namespaces: a namespace created by `unshare` in a throw-away thread and kept alive by
//! bind-mounting its `/proc/thread-self/ns/*` file, the way `ip netns add` does, so a pod needs no
//! pause process.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

use crate::NetError;

/// Where iproute2 (and therefore `ip netns exec`) keeps named network namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Serialises the one-time setup of [`NETNS_DIR`] within this process, so two sandboxes created at
/// once never stack two bind mounts of the directory on itself.
static NETNS_DIR_SETUP: Mutex<()> = Mutex::new(());

/// The files that pin one pod's namespaces.
#[derive(Clone, Debug)]
pub(crate) struct NsFiles {
    pub net: PathBuf,
    pub ipc: PathBuf,
    pub uts: PathBuf,
}

fn ns_err(what: String, source: Errno) -> NetError {
    NetError::Namespace {
        what,
        source: io::Error::from(source),
    }
}

/// Makes `/run/netns` a mount point with shared propagation, exactly as iproute2 does, so the
/// namespace mounts below it are visible in mount namespaces created later (`ip netns exec`).
pub(crate) fn ensure_netns_dir() -> Result<(), NetError> {
    let _guard = NETNS_DIR_SETUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fs::create_dir_all(NETNS_DIR).map_err(|source| NetError::Io {
        context: format!("creating {NETNS_DIR}"),
        source,
    })?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself first.
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| ns_err(format!("bind-mounting {NETNS_DIR} onto itself"), e))?;
            shared().map_err(|e| ns_err(format!("making {NETNS_DIR} a shared mount"), e))
        }
        Err(e) => Err(ns_err(format!("making {NETNS_DIR} a shared mount"), e)),
    }
}

/// Creates new network, IPC and UTS namespaces (hostname set in the UTS one) and pins each on its
/// file. Runs in a dedicated thread that exits afterwards, because `unshare` changes the calling
/// thread for good and pooled threads must never end up in a pod's namespaces.
pub(crate) fn create(files: &NsFiles, hostname: &str) -> Result<(), NetError> {
    for path in [&files.net, &files.ipc, &files.uts] {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| NetError::Io {
                context: format!("creating namespace mount point {}", path.display()),
                source,
            })?;
    }
    let files = files.clone();
    let hostname = hostname.to_owned();
    std::thread::Builder::new()
        .name("podnet-unshare".into())
        .spawn(move || -> Result<(), NetError> {
            unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
                .map_err(|e| ns_err("unshare(net, ipc, uts)".into(), e))?;
            if !hostname.is_empty() {
                nix::unistd::sethostname(&hostname)
                    .map_err(|e| ns_err(format!("setting hostname {hostname:?}"), e))?;
            }
            // What the CNI loopback plugin's ADD does, without a plugin process.
            loopback_up()
                .map_err(|e| ns_err("setting lo up in the pod's network namespace".into(), e))?;
            for (kind, target) in [
                ("net", &files.net),
                ("ipc", &files.ipc),
                ("uts", &files.uts),
            ] {
                let source = format!("/proc/thread-self/ns/{kind}");
                mount(
                    Some(source.as_str()),
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| {
                    ns_err(format!("bind-mounting {source} on {}", target.display()), e)
                })?;
            }
            Ok(())
        })
        .map_err(|source| NetError::Io {
            context: "spawning the namespace-creating thread".into(),
            source,
        })?
        .join()
        .map_err(|_| NetError::Namespace {
            what: "creating namespaces".into(),
            source: io::Error::other("the namespace-creating thread panicked"),
        })?
}

/// Sets `lo` up in the calling thread's network namespace: one RTM_NEWLINK request over
/// rtnetlink (`ip link set lo up`), answered by an acknowledgement carrying the error.
fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        socket,
    };
    const RTM_NEWLINK: u16 = 16;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST_ACK: u16 = 0x1 | 0x4;
    const IFF_UP: u32 = 0x1;
    let index = nix::net::if_::if_nametoindex("lo")?;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    // struct nlmsghdr (16 bytes) + struct ifinfomsg (16 bytes), native byte order.
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST_ACK.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    msg.extend_from_slice(&[0u8, 0u8]); // AF_UNSPEC, padding
    msg.extend_from_slice(&0u16.to_ne_bytes()); // device type
    msg.extend_from_slice(&(index as i32).to_ne_bytes());
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    sendto(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = recv(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &mut buf,
        MsgFlags::empty(),
    )?;
    // The acknowledgement: nlmsghdr with type NLMSG_ERROR, then the (negated) errno, 0 for success.
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if code == 0 {
            return Ok(());
        }
        return Err(Errno::from_raw(-code));
    }
    Err(Errno::EPROTO)
}

/// Whether `path` is a live namespace (a mounted nsfs file) rather than a leftover plain file.
pub(crate) fn is_ns_mount(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Unmounts and deletes a namespace file; a missing or unmounted file is fine.
pub(crate) fn remove(path: &Path) -> Result<(), NetError> {
    // Loop in case something mounted the same file twice; EINVAL means nothing is mounted there.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
            Err(e) => return Err(ns_err(format!("unmounting {}", path.display()), e)),
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetError::Io {
            context: format!("deleting namespace file {}", path.display()),
            source,
        }),
    }
}
