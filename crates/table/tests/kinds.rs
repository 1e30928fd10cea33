//! Rows of each kind on realistic objects; expected cells are what `kubectl get`
//! (and `-o wide`) shows against a real Kubernetes API server.

use serde_json::{Value, json};
use table::{cells, columns, crd_cells, crd_columns, parse_timestamp};

/// "now" for every test: 2024-05-01T12:00:00Z.
fn now() -> i64 {
    parse_timestamp("2024-05-01T12:00:00Z").unwrap()
}

fn names(group: &str, kind: &str) -> Vec<(String, i32)> {
    columns(group, kind)
        .iter()
        .map(|c| (c.name.to_uppercase(), c.priority))
        .collect()
}

fn headers(group: &str, kind: &str, wide: bool) -> String {
    names(group, kind)
        .into_iter()
        .filter(|(_, p)| wide || *p == 0)
        .map(|(n, _)| n)
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(group: &str, kind: &str, obj: Value) -> Vec<Value> {
    let c = cells(group, kind, &obj, now());
    assert_eq!(c.len(), columns(group, kind).len(), "one cell per column");
    c
}

#[test]
fn pod_columns_and_running_row() {
    assert_eq!(headers("", "Pod", false), "NAME READY STATUS RESTARTS AGE");
    assert_eq!(
        headers("", "Pod", true),
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
    );
    let pod = json!({
        "metadata": {"name": "web-7d4b9c-x2k4p", "creationTimestamp": "2024-05-01T11:55:00Z"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "web"}, {"name": "log"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:57:00Z"}}},
                {"name": "log", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]
        }
    });
    assert_eq!(
        row("", "Pod", pod),
        vec![
            json!("web-7d4b9c-x2k4p"),
            json!("2/2"),
            json!("Running"),
            json!("2 (3m ago)"),
            json!("5m"),
            json!("10.42.0.7"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}

fn pod_status(pod: Value) -> (String, String, String) {
    let c = row("", "Pod", pod);
    (
        c[1].as_str().unwrap().to_string(),
        c[2].as_str().unwrap().to_string(),
        c[3].as_str().unwrap().to_string(),
    )
}

#[test]
fn pod_status_column() {
    // Pending, not yet scheduled: phase, no IP/node.
    let pending = json!({
        "metadata": {"name": "p", "creationTimestamp": "2024-05-01T11:59:30Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending"}
    });
    let c = row("", "Pod", pending.clone());
    assert_eq!(c[2], json!("Pending"));
    assert_eq!(c[4], json!("30s"));
    assert_eq!(c[5], json!("<none>"));
    assert_eq!(c[6], json!("<none>"));

    // Waiting reason wins: ImagePullBackOff / CrashLoopBackOff.
    let waiting = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "containerStatuses": [
            {"name": "c", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff"}}}
        ]}
    });
    assert_eq!(
        pod_status(waiting),
        ("0/1".into(), "ImagePullBackOff".into(), "0".into())
    );

    // Init containers: "Init:0/2" while the first runs, "Init:1/2" for the second,
    // "Init:Error" when one failed, "Init:CrashLoopBackOff" from a waiting reason.
    let init = |statuses: Value| {
        json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": statuses,
                       "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}]}
        })
    };
    assert_eq!(
        pod_status(init(json!([{"name": "i1", "state": {"running": {}}}, {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]))).1,
        "Init:0/2"
    );
    assert_eq!(
        pod_status(init(json!([{"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, {"name": "i2", "state": {"running": {}}}]))).1,
        "Init:1/2"
    );
    assert_eq!(
        pod_status(init(
            json!([{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}])
        ))
        .1,
        "Init:Error"
    );
    assert_eq!(
        pod_status(init(
            json!([{"name": "i1", "state": {"terminated": {"exitCode": 2}}}])
        ))
        .1,
        "Init:ExitCode:2"
    );
    assert_eq!(
        pod_status(init(
            json!([{"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
        )),
        ("0/1".into(), "Init:CrashLoopBackOff".into(), "3".into())
    );

    // Completed pod.
    let done = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "c", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]}
    });
    assert_eq!(
        pod_status(done.clone()),
        ("0/1".into(), "Completed".into(), "0".into())
    );
    // A completed pod being deleted still says Completed (terminal phase)...
    let mut deleting_done = done;
    deleting_done["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
    assert_eq!(pod_status(deleting_done).1, "Completed");
    // ...a running one says Terminating; NodeLost says Unknown.
    let mut running = json!({
        "metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "state": {"running": {}}}]}
    });
    assert_eq!(pod_status(running.clone()).1, "Terminating");
    running["status"]["reason"] = json!("NodeLost");
    assert_eq!(pod_status(running).1, "Unknown");

    // One container completed, another still running: Running if the pod is Ready,
    // else NotReady.
    let mixed = |ready: &str| {
        json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [
                    {"name": "a", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "ready": true, "state": {"running": {}}}
                ]}
        })
    };
    assert_eq!(
        pod_status(mixed("True")),
        ("1/2".into(), "Running".into(), "0".into())
    );
    assert_eq!(pod_status(mixed("False")).1, "NotReady");

    // Killed by a signal without a reason.
    let signal = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
        ]}
    });
    assert_eq!(pod_status(signal).1, "Signal:9");

    // Scheduling gates.
    let gated = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}], "schedulingGates": [{"name": "g"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
    });
    assert_eq!(pod_status(gated).1, "SchedulingGated");

    // Sidecar (restartable init container) counts in READY; its restarts count.
    let sidecar = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    });
    assert_eq!(
        pod_status(sidecar),
        ("2/2".into(), "Running".into(), "1".into())
    );

    // Readiness gates: count of gates whose condition is True.
    let gates = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}], "readinessGates": [{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]},
        "status": {"phase": "Running", "conditions": [{"type": "example.com/a", "status": "True"}]}
    });
    assert_eq!(row("", "Pod", gates)[8], json!("1/2"));
}

#[test]
fn node_rows() {
    assert_eq!(headers("", "Node", false), "NAME STATUS ROLES AGE VERSION");
    assert_eq!(
        headers("", "Node", true),
        "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME"
    );
    let node = json!({
        "metadata": {"name": "cp-1", "creationTimestamp": "2024-04-29T09:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true", "kubernetes.io/hostname": "cp-1"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "cp-1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "runc://1.1.12"}
        }
    });
    assert_eq!(
        row("", "Node", node),
        vec![
            json!("cp-1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,etcd"),
            json!("2d3h"),
            json!("v1.33.0"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 12 (bookworm)"),
            json!("6.1.0-18-amd64"),
            json!("runc://1.1.12"),
        ]
    );
    let bare = json!({"metadata": {"name": "n2", "labels": {"kubernetes.io/role": "worker"}},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let c = row("", "Node", bare);
    assert_eq!(c[1], json!("NotReady"));
    assert_eq!(c[2], json!("worker"));
    assert_eq!(c[3], json!("<unknown>"));
    assert_eq!(c[9], json!("<unknown>"));
    let no_conditions = json!({"metadata": {"name": "n3"}, "status": {}});
    let c = row("", "Node", no_conditions);
    assert_eq!(c[1], json!("Unknown"));
    assert_eq!(c[2], json!("<none>"));
}

#[test]
fn namespace_configmap_secret_serviceaccount_lease() {
    assert_eq!(headers("", "Namespace", true), "NAME STATUS AGE");
    assert_eq!(
        row(
            "",
            "Namespace",
            json!({"metadata": {"name": "default", "creationTimestamp": "2024-03-01T12:00:00Z"}, "status": {"phase": "Active"}})
        ),
        vec![json!("default"), json!("Active"), json!("61d")]
    );
    assert_eq!(headers("", "ConfigMap", true), "NAME DATA AGE");
    assert_eq!(
        row(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "data": {"ca.crt": "x"}, "binaryData": {"b": "AA=="}})
        ),
        vec![json!("kube-root-ca.crt"), json!(2), json!("60m")]
    );
    assert_eq!(headers("", "Secret", true), "NAME TYPE DATA AGE");
    assert_eq!(
        row(
            "",
            "Secret",
            json!({"metadata": {"name": "db"}, "type": "Opaque", "data": {"user": "YQ==", "pass": "Yg=="}})
        ),
        vec![json!("db"), json!("Opaque"), json!(2), json!("<unknown>")]
    );
    assert_eq!(headers("", "ServiceAccount", true), "NAME SECRETS AGE");
    assert_eq!(
        row(
            "",
            "ServiceAccount",
            json!({"metadata": {"name": "default", "creationTimestamp": "2024-05-01T07:00:00Z"}})
        ),
        vec![json!("default"), json!(0), json!("5h")]
    );
    assert_eq!(
        headers("coordination.k8s.io", "Lease", true),
        "NAME HOLDER AGE"
    );
    assert_eq!(
        row(
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "node-1", "creationTimestamp": "2024-05-01T11:58:00Z"}, "spec": {"holderIdentity": "node-1"}})
        ),
        vec![json!("node-1"), json!("node-1"), json!("2m")]
    );
}

#[test]
fn service_rows() {
    assert_eq!(
        headers("", "Service", false),
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"
    );
    assert_eq!(
        headers("", "Service", true),
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR"
    );
    let svc = json!({
        "metadata": {"name": "kubernetes", "creationTimestamp": "2024-05-01T11:00:00Z"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1"],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
    });
    assert_eq!(
        row("", "Service", svc),
        vec![
            json!("kubernetes"),
            json!("ClusterIP"),
            json!("10.43.0.1"),
            json!("<none>"),
            json!("443/TCP"),
            json!("60m"),
            json!("<none>")
        ]
    );
    let np = json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "clusterIPs": ["10.43.12.9"], "selector": {"app": "web", "tier": "fe"},
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
    });
    let c = row("", "Service", np);
    assert_eq!(c[4], json!("80:30080/TCP,53/UDP"));
    assert_eq!(c[6], json!("app=web,tier=fe"));
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.1.1"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}});
    assert_eq!(row("", "Service", lb.clone())[3], json!("<pending>"));
    let mut lb2 = lb;
    lb2["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}});
    assert_eq!(
        row("", "Service", lb2)[3],
        json!("203.0.113.9,lb.example.com")
    );
    let headless =
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
    let c = row("", "Service", headless);
    assert_eq!(c[2], json!("None"));
    assert_eq!(c[4], json!("<none>"));
    let ext = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let c = row("", "Service", ext);
    assert_eq!(c[2], json!("<none>"));
    assert_eq!(c[3], json!("db.example.com"));
}

#[test]
fn endpoints_and_slices() {
    assert_eq!(headers("", "Endpoints", true), "NAME ENDPOINTS AGE");
    let ep = json!({"metadata": {"name": "web"}, "subsets": [{
        "addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}, {"ip": "10.42.1.4"}, {"ip": "10.42.1.5"}],
        "ports": [{"port": 8080, "protocol": "TCP"}]
    }]});
    assert_eq!(
        row("", "Endpoints", ep)[1],
        json!("10.42.0.5:8080,10.42.0.6:8080,10.42.1.4:8080 + 1 more...")
    );
    assert_eq!(
        row("", "Endpoints", json!({"metadata": {"name": "none"}}))[1],
        json!("<none>")
    );
    assert_eq!(
        headers("discovery.k8s.io", "EndpointSlice", true),
        "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"
    );
    let slice = json!({"metadata": {"name": "web-abc12"}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}]});
    assert_eq!(
        row("discovery.k8s.io", "EndpointSlice", slice),
        vec![
            json!("web-abc12"),
            json!("IPv4"),
            json!("8080"),
            json!("10.42.0.5,10.42.0.6"),
            json!("<unknown>")
        ]
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
    let c = row("discovery.k8s.io", "EndpointSlice", empty);
    assert_eq!(
        (c[2].clone(), c[3].clone()),
        (json!("<unset>"), json!("<unset>"))
    );
}

#[test]
fn event_rows() {
    assert_eq!(
        headers("", "Event", false),
        "LAST SEEN TYPE REASON OBJECT MESSAGE"
    );
    assert_eq!(
        headers("", "Event", true),
        "LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME"
    );
    let ev = json!({
        "metadata": {"name": "web-1.17c9a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "type": "Normal", "message": "Successfully pulled image \"nginx\"\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:58:00Z", "count": 3
    });
    assert_eq!(
        row("", "Event", ev),
        vec![
            json!("2m"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{web}"),
            json!("kubelet, node-1"),
            json!("Successfully pulled image \"nginx\""),
            json!("10m"),
            json!(3),
            json!("web-1.17c9a"),
        ]
    );
    // events.k8s.io-style event: eventTime, reportingController, no count.
    let new = json!({
        "metadata": {"name": "x"}, "involvedObject": {"kind": "Node"},
        "reason": "Starting", "type": "Normal", "eventTime": "2024-05-01T11:59:00.000000Z",
        "reportingComponent": "drover-agent"
    });
    let c = row("", "Event", new);
    assert_eq!(c[0], json!("60s"));
    assert_eq!(c[3], json!("node"));
    assert_eq!(c[5], json!("drover-agent"));
    assert_eq!(c[8], json!(1));
}

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

#[test]
fn workload_rows() {
    assert_eq!(
        headers("apps", "Deployment", false),
        "NAME READY UP-TO-DATE AVAILABLE AGE"
    );
    assert_eq!(
        headers("apps", "Deployment", true),
        "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR"
    );
    let deploy = json!({
        "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(json!([{"name": "nginx", "image": "nginx:1.25"}, {"name": "sidecar", "image": "busybox"}]))},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
    });
    assert_eq!(
        row("apps", "Deployment", deploy),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("60m"),
            json!("nginx,sidecar"),
            json!("nginx:1.25,busybox"),
            json!("app=web")
        ]
    );

    assert_eq!(
        headers("apps", "ReplicaSet", false),
        "NAME DESIRED CURRENT READY AGE"
    );
    assert_eq!(
        headers("apps", "ReplicaSet", true),
        "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR"
    );
    let rs = json!({
        "metadata": {"name": "web-7d4b9c"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                 "template": template(json!([{"name": "nginx", "image": "nginx:1.25"}]))},
        "status": {"replicas": 3, "readyReplicas": 3}
    });
    assert_eq!(
        row("apps", "ReplicaSet", rs),
        vec![
            json!("web-7d4b9c"),
            json!(3),
            json!(3),
            json!(3),
            json!("<unknown>"),
            json!("nginx"),
            json!("nginx:1.25"),
            json!("app=web,pod-template-hash=7d4b9c")
        ]
    );

    assert_eq!(
        headers("", "ReplicationController", true),
        "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR"
    );
    let rc = json!({"metadata": {"name": "old"}, "spec": {"replicas": 2, "selector": {"app": "old"},
        "template": template(json!([{"name": "c", "image": "i"}]))}, "status": {"replicas": 2}});
    assert_eq!(
        row("", "ReplicationController", rc),
        vec![
            json!("old"),
            json!(2),
            json!(2),
            json!(0),
            json!("<unknown>"),
            json!("c"),
            json!("i"),
            json!("app=old")
        ]
    );

    assert_eq!(
        headers("apps", "DaemonSet", true),
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS IMAGES SELECTOR"
    );
    let ds = json!({
        "metadata": {"name": "proxy"},
        "spec": {"selector": {"matchLabels": {"app": "proxy"}},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "p", "image": "proxy:1"}]}}},
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}
    });
    assert_eq!(
        row("apps", "DaemonSet", ds),
        vec![
            json!("proxy"),
            json!(2),
            json!(2),
            json!(1),
            json!(2),
            json!(1),
            json!("kubernetes.io/os=linux"),
            json!("<unknown>"),
            json!("p"),
            json!("proxy:1"),
            json!("app=proxy")
        ]
    );

    assert_eq!(headers("apps", "StatefulSet", false), "NAME READY AGE");
    assert_eq!(
        headers("apps", "StatefulSet", true),
        "NAME READY AGE CONTAINERS IMAGES"
    );
    let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": template(json!([{"name": "pg", "image": "postgres:16"}]))},
        "status": {"readyReplicas": 1}});
    assert_eq!(
        row("apps", "StatefulSet", sts),
        vec![
            json!("db"),
            json!("1/3"),
            json!("<unknown>"),
            json!("pg"),
            json!("postgres:16")
        ]
    );
}

#[test]
fn job_and_cronjob_rows() {
    assert_eq!(
        headers("batch", "Job", false),
        "NAME STATUS COMPLETIONS DURATION AGE"
    );
    assert_eq!(
        headers("batch", "Job", true),
        "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR"
    );
    let done = json!({
        "metadata": {"name": "pi", "creationTimestamp": "2024-05-01T11:50:00Z"},
        "spec": {"completions": 1, "parallelism": 1,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                 "template": template(json!([{"name": "pi", "image": "perl:5.34"}]))},
        "status": {"succeeded": 1, "startTime": "2024-05-01T11:50:00Z", "completionTime": "2024-05-01T11:50:42Z",
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        row("batch", "Job", done),
        vec![
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("42s"),
            json!("10m"),
            json!("pi"),
            json!("perl:5.34"),
            json!("batch.kubernetes.io/controller-uid=u1")
        ]
    );
    let running = json!({
        "metadata": {"name": "work"},
        "spec": {"parallelism": 3},
        "status": {"succeeded": 0, "startTime": "2024-05-01T11:57:00Z"}
    });
    let c = row("batch", "Job", running);
    assert_eq!(
        (c[1].clone(), c[2].clone(), c[3].clone()),
        (json!("Running"), json!("0/1 of 3"), json!("3m"))
    );
    let failed = json!({"metadata": {"name": "f"}, "spec": {"completions": 2},
        "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}});
    let c = row("batch", "Job", failed);
    assert_eq!(
        (c[1].clone(), c[2].clone(), c[3].clone()),
        (json!("Failed"), json!("0/2"), json!(""))
    );

    assert_eq!(
        headers("batch", "CronJob", false),
        "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE"
    );
    let cj = json!({
        "metadata": {"name": "hello", "creationTimestamp": "2024-05-01T10:00:00Z"},
        "spec": {"schedule": "*/5 * * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": template(json!([{"name": "hello", "image": "busybox"}]))}}},
        "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-05-01T11:55:00Z"}
    });
    assert_eq!(
        row("batch", "CronJob", cj),
        vec![
            json!("hello"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!(false),
            json!(1),
            json!("5m"),
            json!("120m"),
            json!("hello"),
            json!("busybox"),
            json!("<none>")
        ]
    );
}

#[test]
fn hpa_rows() {
    assert_eq!(
        headers("autoscaling", "HorizontalPodAutoscaler", true),
        "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"
    );
    let hpa = json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "70m"}}}]}
    });
    assert_eq!(
        row("autoscaling", "HorizontalPodAutoscaler", hpa),
        vec![
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 35%/80%"),
            json!("1"),
            json!(10),
            json!(2),
            json!("<unknown>")
        ]
    );
    let fresh = json!({
        "metadata": {"name": "w"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 5,
                 "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}
                 ]}
    });
    let c = row("autoscaling", "HorizontalPodAutoscaler", fresh);
    assert_eq!(
        c[2],
        json!("cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more...")
    );
    assert_eq!(c[3], json!("<unset>"));
    assert_eq!(
        row(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "n"}, "spec": {"maxReplicas": 3}})
        )[2],
        json!("<none>")
    );
}

#[test]
fn default_and_crd_kinds() {
    // CustomResourceDefinitions and unknown kinds use the default convertor.
    assert_eq!(
        headers("apiextensions.k8s.io", "CustomResourceDefinition", true),
        "NAME CREATED AT"
    );
    assert_eq!(
        columns("apiextensions.k8s.io", "CustomResourceDefinition")[1].type_,
        "date"
    );
    assert_eq!(
        row(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-04-01T08:30:00Z"}})
        ),
        vec![json!("widgets.example.com"), json!("2024-04-01T08:30:00Z")]
    );
    assert_eq!(
        columns("rbac.authorization.k8s.io", "Role")[0].format,
        "name"
    );

    // A CRD without printer columns: NAME AGE.
    let cols: Vec<String> = crd_columns(None)
        .iter()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(cols, ["NAME", "AGE"]);
    let w = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-05-01T11:00:00Z"}, "spec": {"size": 3}});
    assert_eq!(crd_cells(None, &w, now()), vec![json!("w1"), json!("60m")]);
    assert_eq!(
        crd_cells(Some(&json!([])), &w, now()),
        vec![json!("w1"), json!("60m")]
    );

    let apc = json!([
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    let cols = crd_columns(Some(&apc));
    assert_eq!(
        cols.iter()
            .map(|c| (c.name.as_str(), c.type_.as_str(), c.priority))
            .collect::<Vec<_>>(),
        [
            ("Name", "string", 0),
            ("Size", "integer", 0),
            ("Ready", "string", 0),
            ("Paused", "boolean", 0),
            ("Ratio", "number", 1),
            ("Age", "date", 0)
        ]
    );
    assert_eq!(cols[0].format, "name");
    let obj = json!({
        "metadata": {"name": "w2", "creationTimestamp": "2024-05-01T11:59:50Z"},
        "spec": {"size": 3, "ratio": 0.5},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    // Missing values are null cells (kubectl prints <none>).
    assert_eq!(
        crd_cells(Some(&apc), &obj, now()),
        vec![
            json!("w2"),
            json!(3),
            json!("True"),
            Value::Null,
            json!(0.5),
            json!("10s")
        ]
    );
    // Type mismatches become null, bad dates "<invalid>", non-scalars print as JSON.
    let odd = json!({"metadata": {"name": "w3", "creationTimestamp": "soon"}, "spec": {"size": "big", "paused": true}, "status": {"conditions": [{"type": "Ready", "status": {"x": 1}}]}});
    assert_eq!(
        crd_cells(Some(&apc), &odd, now()),
        vec![
            json!("w3"),
            Value::Null,
            json!("{\"x\":1}"),
            json!(true),
            Value::Null,
            json!("<invalid>")
        ]
    );
}

#[test]
fn column_json_shape() {
    let c = &columns("", "Pod")[5];
    assert_eq!(
        c.to_json(),
        json!({"name": "IP", "type": "string", "format": "", "description": c.description, "priority": 1})
    );
    let owned: table::OwnedColumn = (&columns("", "Pod")[0]).into();
    assert_eq!(owned.to_json()["format"], json!("name"));
}
