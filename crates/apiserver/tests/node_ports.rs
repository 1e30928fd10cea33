//! NodePort allocation through the real API server (in-process, SQLite store): the
//! range, requested ports, duplicates, keeping ports across updates, release on delete,
//! and persistence across a restart.

use client::{Client, Resource};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn start(dir: &Path) -> (Client, tokio::task::JoinHandle<()>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store: store::SharedStore =
        Arc::new(store::SqliteStore::open(dir.join("state.db")).unwrap());
    let running = apiserver::start(apiserver::Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        store,
        history_revisions: 1000,
        compaction_interval: Duration::from_secs(3600),
        service_cidr: "10.96.0.0/12".into(),
    })
    .await
    .unwrap();
    let c = Client::from_kubeconfig_file(dir.join("kubeconfig")).unwrap();
    (c, running.task)
}

fn svc(name: &str, ty: &str, node_ports: &[Option<u16>]) -> Value {
    let ports: Vec<Value> = node_ports
        .iter()
        .enumerate()
        .map(|(i, np)| {
            let mut p = json!({"name": format!("p{i}"), "port": 80 + i as u16});
            if let Some(np) = np {
                p["nodePort"] = json!(np);
            }
            p
        })
        .collect();
    json!({"metadata": {"name": name}, "spec": {"type": ty, "ports": ports}})
}

fn node_ports(o: &Value) -> Vec<u16> {
    o["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["nodePort"].as_u64().map(|n| n as u16))
        .collect()
}

async fn create(c: &Client, o: Value) -> Result<Value, client::Error> {
    c.create(
        &Resource::SERVICES,
        Some("default"),
        &o,
        &Default::default(),
    )
    .await
}

#[tokio::test]
async fn node_ports_are_allocated_checked_kept_released_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let (c, task) = start(dir.path()).await;

    // Allocated in range when missing, one per port, all different.
    let a = create(&c, svc("a", "NodePort", &[None, None]))
        .await
        .unwrap();
    let got = node_ports(&a);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| (30000..=32767).contains(p)), "{got:?}");
    assert_ne!(got[0], got[1]);

    // Requested ports are honoured.
    let b = create(&c, svc("b", "NodePort", &[Some(31234)]))
        .await
        .unwrap();
    assert_eq!(node_ports(&b), vec![31234]);

    // Duplicates and out-of-range ports are 422 Invalid.
    let e = create(&c, svc("dup", "NodePort", &[Some(31234)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(422), "{e}");
    assert!(
        e.to_string().contains("provided port is already allocated"),
        "{e}"
    );
    let e = create(&c, svc("low", "NodePort", &[Some(8080)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(422), "{e}");
    assert!(e.to_string().contains("30000-32767"), "{e}");
    let e = create(&c, svc("dup2", "NodePort", &[Some(got[1])]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(422), "{e}");

    // ClusterIP services get none; LoadBalancer ones do.
    let plain = create(&c, svc("plain", "ClusterIP", &[None]))
        .await
        .unwrap();
    assert!(node_ports(&plain).is_empty());
    let lb = create(&c, svc("lb", "LoadBalancer", &[None]))
        .await
        .unwrap();
    assert_eq!(node_ports(&lb).len(), 1);

    // An update that leaves nodePort out keeps it.
    let mut upd = a.clone();
    for p in upd["spec"]["ports"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("nodePort");
    }
    let a2 = c
        .replace(
            &Resource::SERVICES,
            Some("default"),
            "a",
            &upd,
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(node_ports(&a2), got);
    // Switching to ClusterIP drops them; switching back allocates again.
    let mut to_ip = a2.clone();
    to_ip["spec"]["type"] = json!("ClusterIP");
    to_ip["spec"]
        .as_object_mut()
        .unwrap()
        .remove("externalTrafficPolicy");
    let a3 = c
        .replace(
            &Resource::SERVICES,
            Some("default"),
            "a",
            &to_ip,
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(node_ports(&a3).is_empty(), "{a3}");

    // Released on delete: the port can be asked for again.
    c.delete(
        &Resource::SERVICES,
        Some("default"),
        "b",
        &Default::default(),
    )
    .await
    .unwrap();
    let b2 = create(&c, svc("b2", "NodePort", &[Some(31234)]))
        .await
        .unwrap();
    assert_eq!(node_ports(&b2), vec![31234]);

    // Survives a restart on the same store.
    task.abort();
    let (c, task) = start(dir.path()).await;
    let e = create(&c, svc("after", "NodePort", &[Some(31234)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(422), "{e}");
    let lb_port = node_ports(&lb)[0];
    let e = create(&c, svc("after2", "NodePort", &[Some(lb_port)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(422), "{e}");
    task.abort();
}
