//! ClusterIPs come from `--service-cidr`; an IP outside it is refused with 422.

mod common;

use common::Server;

#[test]
fn cluster_ips_come_from_the_configured_range() {
    let s = Server::start_with(&["--service-cidr", "10.123.45.0/24"]);
    s.kubectl(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip = s.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.123.45."), "{ip}");
    let err = s.kubectl_stdin_output(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: outside}\nspec: {clusterIP: 10.96.0.5, ports: [{port: 80}]}\n",
    );
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(
        text.contains("not in the valid range") && text.contains("10.123.45.0/24"),
        "{text}"
    );
    let bad = std::process::Command::new(common::drover_bin())
        .args([
            "server",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--service-cidr",
            "nonsense",
            "--data-dir",
        ])
        .arg(s.dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid service CIDR"));
}
