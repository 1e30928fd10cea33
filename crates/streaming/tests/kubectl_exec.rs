//! exec / attach / cp driven by the real kubectl against a fake API server.

mod support;

use support::{ApiServer, Config, payload};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_echo_uses_websocket_v5() {
    let api = ApiServer::start(Config::default()).await;
    let out = api.run(&["exec", "p", "--", "echo", "hi"], None).await;
    assert!(out.status.success(), "kubectl failed: {}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(api.upgrades("/exec"), vec!["GET websocket"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_propagates_exit_code_and_separates_stderr() {
    let api = ApiServer::start(Config::default()).await;
    let out = api
        .run(&["exec", "p", "--", "sh", "-c", "exit 3"], None)
        .await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));

    let out = api
        .run(
            &[
                "exec",
                "p",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 7",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "stderr: {}", stderr(&out));
    assert!(!stdout(&out).contains("err"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stdin_and_large_transfers() {
    let api = ApiServer::start(Config::default()).await;
    let out = api
        .run(&["exec", "-i", "p", "--", "cat"], Some(b"data\n".to_vec()))
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "data\n");

    // A few MB out.
    let out = api
        .run(&["exec", "p", "--", "seq", "1", "600000"], None)
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: String = (1..=600000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.stdout.len(), expected.len());
    assert!(out.stdout == expected.as_bytes());

    // A few MB in and back out again.
    let data = payload(3 * 1024 * 1024 + 17, 1);
    let out = api
        .run(&["exec", "-i", "p", "--", "cat"], Some(data.clone()))
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_falls_back_to_spdy() {
    let api = ApiServer::start(Config {
        refuse_websocket: true,
        ..Config::default()
    })
    .await;
    let out = api.run(&["exec", "p", "--", "echo", "hi"], None).await;
    assert!(out.status.success(), "kubectl failed: {}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(
        api.upgrades("/exec"),
        vec!["GET websocket", "POST SPDY/3.1"]
    );

    let out = api
        .run(
            &["exec", "p", "--", "sh", "-c", "echo err >&2; exit 4"],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("err\n"));

    let data = payload(2 * 1024 * 1024 + 5, 2);
    let out = api
        .run(&["exec", "-i", "p", "--", "cat"], Some(data.clone()))
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "got {} bytes back", out.stdout.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_both_ways() {
    let api = ApiServer::start(Config::default()).await;
    let pod_dir = tempfile::tempdir().unwrap();
    let local_dir = tempfile::tempdir().unwrap();
    let src = local_dir.path().join("upload.bin");
    let data = payload(1024 * 1024 + 3, 3);
    std::fs::write(&src, &data).unwrap();

    let remote = format!("p:{}/uploaded.bin", pod_dir.path().display());
    let out = api.run(&["cp", src.to_str().unwrap(), &remote], None).await;
    assert!(out.status.success(), "cp to pod failed: {}", stderr(&out));
    assert!(std::fs::read(pod_dir.path().join("uploaded.bin")).unwrap() == data);

    let back = local_dir.path().join("back.bin");
    let out = api
        .run(&["cp", &remote, back.to_str().unwrap()], None)
        .await;
    assert!(out.status.success(), "cp from pod failed: {}", stderr(&out));
    assert!(std::fs::read(&back).unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_and_without_stdin() {
    let api = ApiServer::start(Config::default()).await;
    let out = api.run(&["attach", "p"], None).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("attached to c\n"), "{}", stdout(&out));

    let out = api
        .run(&["attach", "-i", "p"], Some(b"typed\n".to_vec()))
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("attached to c\ntyped\n"),
        "{}",
        stdout(&out)
    );
    assert!(api.upgrades("/attach").iter().all(|u| u == "GET websocket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_tty_under_script() {
    use std::process::Stdio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = ApiServer::start(Config::default()).await;
    let inner = format!(
        "stty cols 100 rows 40; KUBECONFIG=/dev/null kubectl --server {} exec -it p -- fake-terminal",
        api.url()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-q", "-e", "-f", "-c", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) must be installed");
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let wait_for = |seen: &Vec<u8>, what: &str| String::from_utf8_lossy(seen).contains(what);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !wait_for(&seen, "size=") {
        let n = tokio::time::timeout_at(deadline, output.read(&mut buf))
            .await
            .expect("terminal size never reported")
            .unwrap();
        assert!(
            n > 0,
            "script ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        wait_for(&seen, "size=100x40"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    input.write_all(b"hello q").await.unwrap();
    input.flush().await.unwrap();
    while !wait_for(&seen, "bye") {
        let n = tokio::time::timeout_at(deadline, output.read(&mut buf))
            .await
            .expect("no echo from the terminal program")
            .unwrap();
        assert!(
            n > 0,
            "script ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        wait_for(&seen, "hello q"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let status = tokio::time::timeout_at(deadline, child.wait())
        .await
        .expect("kubectl -it did not exit")
        .unwrap();
    assert!(status.success());
}
