//! End-to-end tests against the real runc and conmon (run as root).

mod common;

use std::time::{Duration, SystemTime};

use common::{Env, NetNs, read_until, wait_for};
use futures::StreamExt;
use oci_runtime::logs::{self, LogOptions};
use oci_runtime::{ExecRequest, Mount, MountKind, RuntimeError, Status};
use tokio::io::AsyncWriteExt;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

async fn read_logs(path: std::path::PathBuf, opts: LogOptions) -> String {
    let chunks: Vec<_> = logs::read(path, opts, async {}).collect().await;
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&c.unwrap());
    }
    String::from_utf8(out).unwrap()
}

fn mounts_mention(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_exit_code_logs_and_clean_remove() {
    let env = Env::new();
    let spec = env.spec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let id = spec.id.clone();
    env.rt.create(&spec).await.unwrap();
    let info = env.rt.info(&id).await.unwrap().unwrap();
    assert_eq!(info.status, Status::Created);
    assert!(info.pid.is_some());
    assert_eq!(info.labels.get("test").map(String::as_str), Some("yes"));
    assert!(matches!(
        env.rt.create(&spec).await,
        Err(RuntimeError::AlreadyExists(_))
    ));

    env.rt.start(&id).await.unwrap();
    let exit = env.rt.wait(&id).await.unwrap();
    assert_eq!(exit.code, 3);
    assert_eq!(exit.signal, None);
    assert!(!exit.oom_killed);
    let info = env.rt.info(&id).await.unwrap().unwrap();
    assert_eq!(info.status, Status::Stopped);
    assert_eq!(info.exit.as_ref().unwrap().code, 3);
    assert!(info.started_at.is_some());
    assert!(info.exit.unwrap().finished_at >= info.started_at.unwrap() - Duration::from_secs(1));

    // The CRI log file: stdout and stderr tagged separately.
    let raw = std::fs::read_to_string(&spec.log_path).unwrap();
    assert!(raw.lines().any(|l| l.contains(" stdout F out")), "{raw}");
    assert!(raw.lines().any(|l| l.contains(" stderr F err")), "{raw}");
    let shown = read_logs(spec.log_path.clone(), LogOptions::default()).await;
    assert!(shown == "out\nerr\n" || shown == "err\nout\n", "{shown:?}");

    // remove leaves nothing but the log.
    let conmon_pid: u32 =
        std::fs::read_to_string(env.rt.config().state_dir.join(&id).join("conmon.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let cgroup_dirs = env.rt.cgroup_dirs(&id).await.unwrap();
    assert!(
        cgroup_dirs.iter().any(|d| d.exists()),
        "cgroup should exist before remove: {cgroup_dirs:?}"
    );
    env.rt.remove(&id).await.unwrap();
    env.rt.remove(&id).await.unwrap(); // idempotent
    assert!(env.rt.info(&id).await.unwrap().is_none());
    assert!(!env.rt.config().state_dir.join(&id).exists());
    let st = std::process::Command::new("runc")
        .arg("--root")
        .arg(&env.rt.config().runtime_root)
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(!st.status.success(), "runc still knows {id}");
    let stat = std::fs::read_to_string(format!("/proc/{conmon_pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "conmon still running: {stat}"
    );
    for d in cgroup_dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    assert!(!mounts_mention(&id));
    assert!(spec.log_path.exists(), "remove must keep the log");

    // A created, never started container is removed just as well; unknown ids are fine.
    let spec = env.spec(&["sleep", "1000"]);
    env.rt.create(&spec).await.unwrap();
    let dirs = env.rt.cgroup_dirs(&spec.id).await.unwrap();
    env.rt.remove(&spec.id).await.unwrap();
    assert!(env.rt.list().await.unwrap().is_empty());
    assert!(dirs.iter().all(|d| !d.exists()));
    env.rt.remove("never-existed").await.unwrap();
    assert!(matches!(
        env.rt.start("never-existed").await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_failure_carries_runc_message_and_leaves_nothing() {
    let env = Env::new();
    let spec = env.spec(&["no-such-binary"]);
    let err = env.rt.create(&spec).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("executable file not found"), "{msg}");
    assert!(matches!(err, RuntimeError::Create { .. }));
    assert!(!env.rt.config().state_dir.join(&spec.id).exists());
    assert!(env.rt.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_when_term_is_ignored() {
    let env = Env::new();
    let spec = env.spec(&[
        "sh",
        "-c",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    env.run(&spec).await;
    let log = spec.log_path.clone();
    wait_for("ready in log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")
    })
    .await;
    let exit = env
        .rt
        .stop(&spec.id, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(exit.code, 137);
    assert_eq!(exit.signal, Some(9));

    // A process that handles TERM exits with its own code.
    let spec = env.spec(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    env.run(&spec).await;
    let log = spec.log_path.clone();
    wait_for("ready in log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")
    })
    .await;
    let exit = env
        .rt
        .stop(&spec.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(exit.code, 7);
    // Stopping again just reports the exit.
    assert_eq!(
        env.rt
            .stop(&spec.id, Duration::from_secs(1))
            .await
            .unwrap()
            .code,
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_timestamps_since_and_follow() {
    let env = Env::new();
    let spec = env.spec(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; printf 'no-newline'; sleep 1; echo late >&2; sleep 1; echo last",
    ]);
    env.run(&spec).await;
    let log = spec.log_path.clone();
    wait_for("line5", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("line5")
    })
    .await;

    let tail = read_logs(
        log.clone(),
        LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tail, "line4\nline5\n");
    let ts = read_logs(
        log.clone(),
        LogOptions {
            tail_lines: Some(1),
            timestamps: true,
            ..Default::default()
        },
    )
    .await;
    let (stamp, text) = ts.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "line5");
    assert!(stamp.ends_with('Z') && stamp.len() == 30, "{stamp}");
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(
        read_logs(
            log.clone(),
            LogOptions {
                since: Some(future),
                ..Default::default()
            }
        )
        .await,
        ""
    );
    let limited = read_logs(
        log.clone(),
        LogOptions {
            limit_bytes: Some(8),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(limited, "line1\nli");

    // Follow until the container exits.
    let rt = env.rt.clone();
    let id = spec.id.clone();
    let stop = async move {
        let _ = rt.wait(&id).await;
    };
    let stream = logs::read(
        log.clone(),
        LogOptions {
            follow: true,
            ..Default::default()
        },
        stop,
    );
    let all: Vec<_> = tokio::time::timeout(Duration::from_secs(30), stream.collect::<Vec<_>>())
        .await
        .unwrap();
    let text: String = all
        .into_iter()
        .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
        .collect();
    assert!(
        text.starts_with("line1\nline2\nline3\nline4\nline5\n"),
        "{text:?}"
    );
    assert!(
        text.contains("late\n") && text.ends_with("last\n"),
        "{text:?}"
    );
    assert!(text.contains("no-newline"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_pipes_exec_sync_and_timeout() {
    let env = Env::new();
    let spec = env.spec(&["sleep", "1000"]);
    env.run(&spec).await;
    let id = &spec.id;

    let mut sess = env
        .rt
        .exec(
            id,
            ExecRequest {
                args: s(&["cat"]),
                env: vec![],
                tty: false,
                stdin: true,
            },
        )
        .await
        .unwrap();
    let mut stdin = sess.stdin.take().unwrap();
    let mut stdout = sess.stdout.take().unwrap();
    stdin.write_all(b"hello exec\n").await.unwrap();
    read_until(&mut stdout, "hello exec\n").await;
    stdin.shutdown().await.unwrap();
    drop(stdin);
    assert_eq!(sess.wait().await.unwrap(), 0);

    let out = env
        .rt
        .exec_sync(
            id,
            &s(&["sh", "-c", "echo o; echo e >&2; exit 5"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 5);
    assert_eq!(out.stdout, b"o\n");
    assert_eq!(out.stderr, b"e\n");
    let out = env
        .rt
        .exec_sync(id, &s(&["env"]), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("PATH="));

    let err = env
        .rt
        .exec_sync(id, &s(&["sleep", "777"]), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Timeout(_)), "{err}");
    // The timed-out process was killed inside the container.
    let mut gone = false;
    for _ in 0..100 {
        let ps = env
            .rt
            .exec_sync(id, &s(&["ps"]), Duration::from_secs(20))
            .await
            .unwrap();
        if !String::from_utf8_lossy(&ps.stdout).contains("sleep 777") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "sleep 777 still running after the exec timed out");

    // exec into a stopped container fails clearly.
    env.rt.stop(id, Duration::ZERO).await.unwrap();
    assert!(matches!(
        env.rt
            .exec_sync(id, &s(&["true"]), Duration::from_secs(5))
            .await,
        Err(RuntimeError::NotRunning(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_exec_with_resize() {
    let env = Env::new();
    let spec = env.spec(&["sleep", "1000"]);
    env.run(&spec).await;
    let mut sess = env
        .rt
        .exec(
            &spec.id,
            ExecRequest {
                args: s(&["sh"]),
                env: s(&["FOO=bar"]),
                tty: true,
                stdin: true,
            },
        )
        .await
        .unwrap();
    assert!(sess.stderr.is_none());
    let mut stdin = sess.stdin.take().unwrap();
    let mut stdout = sess.stdout.take().unwrap();
    sess.resize(123, 45).unwrap();
    // Resizes reach the container's terminal asynchronously (SIGWINCH to runc): poll.
    let mut ok = false;
    for _ in 0..50 {
        stdin
            .write_all(b"echo size=$(stty size) tty=$(tty) foo=$FOO\n")
            .await
            .unwrap();
        let out = read_until(&mut stdout, "foo=bar").await;
        if out.contains("size=45 123") {
            assert!(out.contains("tty=/dev/pts/"), "{out}");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "terminal size never became 45x123");
    stdin.write_all(b"exit 4\n").await.unwrap();
    assert_eq!(sess.wait().await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_stdin_container() {
    let env = Env::new();
    let mut spec = env.spec(&["cat"]);
    spec.stdin = true;
    spec.stdin_once = true;
    env.run(&spec).await;
    let mut att = env.rt.attach(&spec.id).await.unwrap();
    let mut stdin = att.stdin.take().unwrap();
    let mut stdout = att.stdout.take().unwrap();
    assert!(att.stderr.is_some());
    stdin.write_all(b"ping over attach\n").await.unwrap();
    read_until(&mut stdout, "ping over attach\n").await;
    // Closing stdin ends cat.
    stdin.shutdown().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), env.rt.wait(&spec.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 0);
    let raw = std::fs::read_to_string(&spec.log_path).unwrap();
    assert!(raw.contains("stdout F ping over attach"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_tty_container_and_resize() {
    let env = Env::new();
    let mut spec = env.spec(&["sh"]);
    spec.stdin = true;
    spec.tty = true;
    env.run(&spec).await;
    let mut att = env.rt.attach(&spec.id).await.unwrap();
    assert!(att.stderr.is_none());
    let mut stdin = att.stdin.take().unwrap();
    let mut stdout = att.stdout.take().unwrap();
    att.resize(100, 40).unwrap();
    let mut ok = false;
    for _ in 0..50 {
        stdin
            .write_all(b"echo size=$(stty size) done\n")
            .await
            .unwrap();
        let out = read_until(&mut stdout, "done").await;
        if out.contains("size=40 100") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "terminal size never became 40x100");
    stdin.write_all(b"exit 2\n").await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), env.rt.wait(&spec.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_is_reported() {
    let env = Env::new();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' x); echo survived",
    ]);
    spec.memory_limit = Some(16 * 1024 * 1024);
    env.run(&spec).await;
    let exit = tokio::time::timeout(Duration::from_secs(60), env.rt.wait(&spec.id))
        .await
        .unwrap()
        .unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_ne!(exit.code, 0);
    let info = env.rt.info(&spec.id).await.unwrap().unwrap();
    assert!(info.exit.unwrap().oom_killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_limits_and_stats() {
    let env = Env::new();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "x=$(head -c 2000000 /dev/zero | tr '\\0' x); while true; do sleep 1; done",
    ]);
    spec.memory_limit = Some(64 * 1024 * 1024);
    spec.cpu_quota = Some(50_000);
    spec.cpu_period = Some(100_000);
    spec.cpu_shares = Some(512);
    env.run(&spec).await;
    let dirs = env.rt.cgroup_dirs(&spec.id).await.unwrap();
    let read = |file: &str| {
        dirs.iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
            .unwrap_or_else(|| panic!("{file} not found in {dirs:?}"))
    };
    assert_eq!(
        read("memory.limit_in_bytes"),
        (64 * 1024 * 1024).to_string()
    );
    assert_eq!(read("cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpu.shares"), "512");
    assert!(
        env.rt
            .cgroup_path(&spec.id)
            .await
            .unwrap()
            .starts_with(&env.cgroup_parent)
    );
    let stats = env.rt.stats(&spec.id).await.unwrap();
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    assert!(stats.memory_working_set_bytes <= stats.memory_usage_bytes);
    assert_eq!(stats.memory_limit_bytes, Some(64 * 1024 * 1024));
}

fn ns_inode(path: &str) -> String {
    let out = std::process::Command::new("stat")
        .args(["-L", "-c", "%i", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_network_and_ipc_namespaces() {
    let env = Env::new();
    let netns = NetNs::new();
    // The "sandbox": a container with its own IPC namespace.
    let sandbox = env.spec(&["sleep", "1000"]);
    env.run(&sandbox).await;
    let sandbox_pid = env
        .rt
        .info(&sandbox.id)
        .await
        .unwrap()
        .unwrap()
        .pid
        .unwrap();
    let ipc_path = format!("/proc/{sandbox_pid}/ns/ipc");

    let mut spec = env.spec(&["sleep", "1000"]);
    spec.netns = Some(netns.path());
    spec.ipc_ns = Some(ipc_path.clone().into());
    env.run(&spec).await;
    let out = env
        .rt
        .exec_sync(
            &spec.id,
            &s(&[
                "sh",
                "-c",
                "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc",
            ]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!(
            "net:[{}]",
            ns_inode(netns.path().to_str().unwrap())
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("ipc:[{}]", ns_inode(&ipc_path))),
        "{text}"
    );
    // Only loopback exists in the fresh namespace.
    let links = env
        .rt
        .exec_sync(&spec.id, &s(&["ip", "link"]), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&links.stdout).contains("lo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_rootfs_capabilities_and_mounts() {
    let env = Env::new();
    let host_dir = env.dir.path().join("hostdata");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("hello.txt"), "from host").unwrap();

    let mut spec = env.spec(&["sleep", "1000"]);
    spec.readonly_rootfs = true;
    spec.mounts = vec![
        Mount {
            destination: "/data".into(),
            source: host_dir.clone(),
            readonly: false,
            kind: MountKind::Bind,
        },
        Mount {
            destination: "/ro".into(),
            source: host_dir.clone(),
            readonly: true,
            kind: MountKind::Bind,
        },
        Mount {
            destination: "/scratch".into(),
            source: Default::default(),
            readonly: false,
            kind: MountKind::Tmpfs {
                size_bytes: Some(4 * 1024 * 1024),
            },
        },
    ];
    env.run(&spec).await;
    let id = &spec.id;
    let run = |cmd: &str| {
        let rt = env.rt.clone();
        let id = id.clone();
        let cmd = cmd.to_string();
        async move {
            rt.exec_sync(&id, &s(&["sh", "-c", &cmd]), Duration::from_secs(20))
                .await
                .unwrap()
        }
    };
    assert_ne!(
        run("touch /rootfile").await.exit_code,
        0,
        "rootfs should be read-only"
    );
    assert_eq!(
        String::from_utf8_lossy(&run("cat /data/hello.txt").await.stdout),
        "from host"
    );
    assert_eq!(run("echo hi > /data/new.txt").await.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(host_dir.join("new.txt")).unwrap(),
        "hi\n"
    );
    assert_ne!(
        run("echo hi > /ro/x.txt").await.exit_code,
        0,
        "read-only bind should refuse writes"
    );
    assert_eq!(
        run("echo hi > /scratch/x && chown 65534 /scratch/x")
            .await
            .exit_code,
        0,
        "default caps allow chown"
    );
    let mounts = String::from_utf8_lossy(&run("cat /proc/mounts").await.stdout).to_string();
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("tmpfs /scratch tmpfs") && l.contains("size=4096k")),
        "{mounts}"
    );
    assert_eq!(
        String::from_utf8_lossy(&run("hostname").await.stdout).trim(),
        id.as_str()
    );

    // Dropping every capability: even root cannot chown.
    let mut spec2 = env.spec(&["sleep", "1000"]);
    spec2.capabilities_drop = vec!["ALL".into()];
    spec2.hostname = "dropped".into();
    spec2.mounts = vec![Mount {
        destination: "/scratch".into(),
        source: Default::default(),
        readonly: false,
        kind: MountKind::Tmpfs { size_bytes: None },
    }];
    env.run(&spec2).await;
    let out = env
        .rt
        .exec_sync(
            &spec2.id,
            &s(&["sh", "-c", "echo hi > /scratch/x && chown 65534 /scratch/x"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0, "chown should fail without CAP_CHOWN");
    let caps = env
        .rt
        .exec_sync(
            &spec2.id,
            &s(&["grep", "CapEff", "/proc/self/status"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&caps.stdout).contains("0000000000000000"),
        "{:?}",
        caps
    );
    let host = env
        .rt
        .exec_sync(&spec2.id, &s(&["hostname"]), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout).trim(), "dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_runtime_adopts_running_containers() {
    let env = Env::new();
    let mut spec = env.spec(&["sh", "-c", "echo started; while true; do sleep 1; done"]);
    spec.labels.insert("pod".into(), "web-1".into());
    env.run(&spec).await;
    let before = env.rt.info(&spec.id).await.unwrap().unwrap();

    let rt2 = env.restarted();
    let list = rt2.list().await.unwrap();
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c.id, spec.id);
    assert_eq!(c.status, Status::Running);
    assert_eq!(c.pid, before.pid);
    assert_eq!(c.labels.get("pod").map(String::as_str), Some("web-1"));
    assert_eq!(c.log_path, spec.log_path);
    assert_eq!(c.created_at, before.created_at);
    let out = rt2
        .exec_sync(
            &spec.id,
            &s(&["echo", "still here"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"still here\n");
    // sh as PID 1 without a TERM handler ignores SIGTERM: stop escalates.
    let exit = rt2
        .stop(&spec.id, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_killed_while_no_runtime_exists_shows_its_exit() {
    let env = Env::new();
    let spec = env.spec(&["sleep", "1000"]);
    env.run(&spec).await;
    let pid = env.rt.info(&spec.id).await.unwrap().unwrap().pid.unwrap();
    let (dir, parent) = (env.dir.path().to_path_buf(), env.cgroup_parent.clone());
    // The "agent" goes away; the container is killed behind its back.
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let rt2 = oci_runtime::Runtime::new(Env::config(&dir, &parent)).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), rt2.wait(&spec.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 137);
    let info = rt2.info(&spec.id).await.unwrap().unwrap();
    assert_eq!(info.status, Status::Stopped);
    assert_eq!(info.exit.unwrap().code, 137);
    assert!(info.pid.is_none());
    assert!(
        rt2.runtime_version().starts_with("runc 1."),
        "{}",
        rt2.runtime_version()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_groups_env_and_cwd() {
    let env = Env::new();
    let mut spec = env.spec(&[
        "sh",
        "-c",
        "echo $(id -u) $(id -g) $(id -G) $(pwd) $GREETING; sleep 1000",
    ]);
    spec.uid = 65534;
    spec.gid = 65534;
    spec.additional_gids = vec![1234];
    spec.cwd = "/tmp".into();
    spec.env = vec!["GREETING=hi".into()];
    env.run(&spec).await;
    let log = spec.log_path.clone();
    wait_for("output", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("hi")
    })
    .await;
    let shown = read_logs(log.clone(), LogOptions::default()).await;
    assert_eq!(shown, "65534 65534 65534 1234 /tmp hi\n");
    // exec runs as the container's user.
    let out = env
        .rt
        .exec_sync(&spec.id, &s(&["id", "-u"]), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"65534\n");
    // Non-root processes keep no effective capabilities.
    let caps = env
        .rt
        .exec_sync(
            &spec.id,
            &s(&["grep", "CapEff", "/proc/self/status"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&caps.stdout).contains("0000000000000000"));
}

fn runc_state(env: &Env, id: &str) -> serde_json::Value {
    let out = std::process::Command::new("/usr/sbin/runc")
        .arg("--root")
        .arg(&env.rt.config().runtime_root)
        .args(["state", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runc state {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// start() releases the created container through its exec fifo (no `runc start`): runc then
/// reports it running, and runc's own kill and delete work on it; starting it again, or
/// starting one whose process died before it was started, fails with runc's wording and
/// without hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_through_the_exec_fifo_keeps_runc_state_consistent() {
    let env = Env::new();
    let spec = env.spec(&["sh", "-c", "echo started; exec sleep 1000"]);
    let id = spec.id.clone();
    env.rt.create(&spec).await.unwrap();
    assert_eq!(runc_state(&env, &id)["status"], "created");
    env.rt.start(&id).await.unwrap();
    let state = runc_state(&env, &id);
    assert_eq!(state["status"], "running", "{state}");
    let info = env.rt.info(&id).await.unwrap().unwrap();
    assert_eq!(info.status, Status::Running);
    assert!(info.started_at.is_some());
    let log = spec.log_path.clone();
    wait_for("the process's output in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("started"))
    })
    .await;
    let again = env.rt.start(&id).await.unwrap_err().to_string();
    assert!(again.contains("already running"), "{again}");
    env.rt.kill(&id, 9).await.unwrap();
    let exit = env.rt.wait(&id).await.unwrap();
    assert_eq!(exit.code, 137);
    env.rt.remove(&id).await.unwrap();
    assert!(env.rt.info(&id).await.unwrap().is_none());

    // The created process is killed before start: start reports it dead instead of waiting.
    let spec = env.spec(&["sleep", "1000"]);
    env.rt.create(&spec).await.unwrap();
    let pid = env.rt.info(&spec.id).await.unwrap().unwrap().pid.unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), env.rt.start(&spec.id))
        .await
        .expect("start of a dead container must not hang")
        .unwrap_err()
        .to_string();
    assert!(err.contains("dead") || err.contains("stopped"), "{err}");
    env.rt.remove(&spec.id).await.unwrap();
}
