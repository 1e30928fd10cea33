//! Pure computation of a pod's status from what the agent knows of its containers,
//! by the kubelet's rules (phase, conditions, container states).

use serde_json::{Value, json};

/// One container's state as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: ContainerCreating, PodInitializing, CrashLoopBackOff, ErrImagePull ...
    Waiting {
        /// The CamelCase reason.
        reason: String,
        /// A human message (may be empty).
        message: String,
    },
    /// Running since.
    Running {
        /// RFC 3339.
        started_at: String,
    },
    /// Ended.
    Terminated {
        /// The exit code (128+signal when killed).
        exit_code: i32,
        /// Completed, Error, OOMKilled, ContainerCannotRun.
        reason: String,
        /// Termination message, if any.
        message: String,
        /// RFC 3339 (may be empty when it never started).
        started_at: String,
        /// RFC 3339.
        finished_at: String,
        /// The container instance.
        container_id: String,
    },
}

impl State {
    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
                container_id,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "finishedAt": finished_at, "containerID": container_id});
                if !started_at.is_empty() {
                    t["startedAt"] = json!(started_at);
                }
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }

    fn exited_ok(&self) -> bool {
        matches!(self, State::Terminated { exit_code: 0, .. })
    }
}

/// What the agent knows about one container of the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    /// spec name.
    pub name: String,
    /// spec image.
    pub image: String,
    /// The image actually run (`repo@sha256:...`), empty before the pull.
    pub image_id: String,
    /// `runc://ID` of the current instance, empty before the first create.
    pub container_id: String,
    /// Current state.
    pub state: State,
    /// The previous instance's end (for lastState).
    pub last: Option<State>,
    /// Restarts so far.
    pub restart_count: u32,
    /// Readiness (probe or, without one, running).
    pub ready: bool,
    /// Startup probe passed (or none and running).
    pub started: bool,
}

impl ContainerView {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state.to_json(),
            "lastState": self.last.as_ref().map_or(json!({}), State::to_json),
        });
        if !self.container_id.is_empty() {
            v["containerID"] = json!(self.container_id);
        }
        v
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    /// The sandbox (namespaces + IP) exists.
    pub sandbox_ready: bool,
    /// The pod IP.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: String,
    /// When the agent first took the pod (RFC 3339).
    pub start_time: String,
    /// Init containers, in spec order.
    pub init: Vec<ContainerView>,
    /// App containers, in spec order.
    pub main: Vec<ContainerView>,
    /// A pod-level failure (e.g. activeDeadlineSeconds): phase Failed with this reason and message.
    pub failed: Option<(String, String)>,
}

/// The pod phase by the kubelet's rules.
pub fn phase(restart_policy: &str, view: &PodView) -> &'static str {
    if view.failed.is_some() {
        return "Failed";
    }
    let init_failed = view
        .init
        .iter()
        .any(|c| matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0));
    if init_failed && restart_policy == "Never" {
        return "Failed";
    }
    if !view.init.iter().all(|c| c.state.exited_ok()) {
        return "Pending";
    }
    let (mut running, mut waiting_fresh, mut succeeded, mut failed) = (0, 0, 0, 0);
    for c in &view.main {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated { exit_code: 0, .. } => succeeded += 1,
            State::Terminated { .. } => failed += 1,
            State::Waiting { .. } if c.last.is_some() => match c.last {
                Some(State::Terminated { exit_code: 0, .. }) => succeeded += 1,
                _ => failed += 1,
            },
            State::Waiting { .. } => waiting_fresh += 1,
        }
    }
    if waiting_fresh > 0 {
        return if running + succeeded + failed > 0 {
            "Running"
        } else {
            "Pending"
        };
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if failed > 0 => "Running",
        "Never" if failed > 0 => "Failed",
        _ => "Succeeded",
    }
}

/// The whole status: phase, conditions (keeping transition times that did not
/// change), IPs, start time and container statuses.
pub fn pod_status(pod: &Value, view: &PodView, now: &str) -> Value {
    let policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
    let phase = phase(policy, view);
    let old = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let cond = |type_: &str, ok: bool, reason: Option<&str>| -> Value {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string();
        let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let (false, Some(r)) = (ok, reason) {
            c["reason"] = json!(r);
        }
        c
    };
    let initialized = view.init.iter().all(|c| c.state.exited_ok());
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let all_ready = !view.main.is_empty() && view.main.iter().all(|c| c.ready) && !terminal;
    let not_ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions = vec![
        cond("PodReadyToStartContainers", view.sandbox_ready, None),
        cond(
            "Initialized",
            initialized,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
        ),
        cond("Ready", all_ready, Some(not_ready_reason)),
        cond("ContainersReady", all_ready, Some(not_ready_reason)),
    ];
    if let Some(s) = old.iter().find(|c| c["type"] == "PodScheduled") {
        conditions.push(s.clone());
    } else {
        conditions.push(cond("PodScheduled", true, None));
    }
    for c in &mut conditions {
        if c["status"] == "False"
            && c["reason"].is_string()
            && c["type"] != "PodReadyToStartContainers"
        {
            let names: Vec<&str> = match c["type"].as_str() {
                Some("Initialized") => view
                    .init
                    .iter()
                    .filter(|x| !x.state.exited_ok())
                    .map(|x| x.name.as_str())
                    .collect(),
                _ => view
                    .main
                    .iter()
                    .filter(|x| !x.ready)
                    .map(|x| x.name.as_str())
                    .collect(),
            };
            if !terminal && !names.is_empty() {
                let what = if c["type"] == "Initialized" {
                    "incomplete"
                } else {
                    "unready"
                };
                c["message"] = json!(format!(
                    "containers with {what} status: [{}]",
                    names.join(" ")
                ));
            }
        }
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": view.start_time,
        "containerStatuses": view.main.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
        "qosClass": qos_class(pod),
    });
    if let Some(ip) = &view.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if !view.init.is_empty() {
        status["initContainerStatuses"] = json!(
            view.init
                .iter()
                .map(ContainerView::to_json)
                .collect::<Vec<_>>()
        );
    }
    if let Some((reason, message)) = &view.failed {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    status
}

/// Guaranteed (every container has equal cpu and memory requests and limits),
/// BestEffort (no requests or limits anywhere) or Burstable.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod["spec"][*f].as_array().into_iter().flatten())
        .collect();
    let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
    if containers
        .iter()
        .all(|c| empty(&c["resources"]["requests"]) && empty(&c["resources"]["limits"]))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = &c["resources"]["limits"][*r];
            let q = &c["resources"]["requests"][*r];
            l.is_string() && (q.is_null() || q == l)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, state: State, ready: bool) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            image_id: String::new(),
            container_id: String::new(),
            state,
            last: None,
            restart_count: 0,
            ready,
            started: ready,
        }
    }
    fn running() -> State {
        State::Running {
            started_at: "t".into(),
        }
    }
    fn exited(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: String::new(),
            started_at: "t".into(),
            finished_at: "t".into(),
            container_id: "runc://x".into(),
        }
    }
    fn waiting(r: &str) -> State {
        State::Waiting {
            reason: r.into(),
            message: String::new(),
        }
    }

    #[test]
    fn phases() {
        let v = |init: Vec<ContainerView>, main: Vec<ContainerView>| PodView {
            init,
            main,
            ..Default::default()
        };
        assert_eq!(
            phase(
                "Always",
                &v(vec![], vec![c("a", waiting("ContainerCreating"), false)])
            ),
            "Pending"
        );
        assert_eq!(
            phase("Always", &v(vec![], vec![c("a", running(), true)])),
            "Running"
        );
        assert_eq!(
            phase("Never", &v(vec![], vec![c("a", exited(0), false)])),
            "Succeeded"
        );
        assert_eq!(
            phase(
                "Never",
                &v(
                    vec![],
                    vec![c("a", exited(1), false), c("b", exited(0), false)]
                )
            ),
            "Failed"
        );
        assert_eq!(
            phase("OnFailure", &v(vec![], vec![c("a", exited(1), false)])),
            "Running"
        );
        assert_eq!(
            phase(
                "Always",
                &v(
                    vec![c("i", running(), false)],
                    vec![c("a", waiting("PodInitializing"), false)]
                )
            ),
            "Pending"
        );
        assert_eq!(
            phase(
                "Never",
                &v(
                    vec![c("i", exited(2), false)],
                    vec![c("a", waiting("PodInitializing"), false)]
                )
            ),
            "Failed"
        );
        let mut crashing = c("a", waiting("CrashLoopBackOff"), false);
        crashing.last = Some(exited(1));
        assert_eq!(phase("Always", &v(vec![], vec![crashing])), "Running");
    }

    #[test]
    fn conditions_and_transition_times() {
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
            {"type": "Initialized", "status": "True", "lastTransitionTime": "t1"},
        ]}});
        let view = PodView {
            sandbox_ready: true,
            pod_ip: Some("10.0.0.2".into()),
            host_ip: "127.0.0.1".into(),
            start_time: "t1".into(),
            main: vec![c("a", running(), false)],
            ..Default::default()
        };
        let s = pod_status(&pod, &view, "t2");
        let get = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(get("Initialized")["lastTransitionTime"], "t1");
        assert_eq!(get("PodScheduled")["lastTransitionTime"], "t0");
        assert_eq!(get("Ready")["status"], "False");
        assert_eq!(
            get("Ready")["message"],
            "containers with unready status: [a]"
        );
        assert_eq!(s["podIP"], "10.0.0.2");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["qosClass"], "BestEffort");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "t"
        );
    }

    #[test]
    fn qos() {
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
