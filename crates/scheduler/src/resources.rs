//! Resource vectors and the effective requests of a pod, as Kubernetes computes them
//! (`k8s.io/component-helpers/resource.PodRequests`).

use std::collections::BTreeMap;

use serde_json::Value;

use api::quantity::{Quantity, QuantityError};

/// The cpu a container without a cpu request counts for when *scoring* (not filtering):
/// Kubernetes' `DefaultMilliCPURequest`, so that request-less pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts for when scoring:
/// Kubernetes' `DefaultMemoryRequest` (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler accounts for, in integers: millicores,
/// bytes, a pod count and extended (scalar) resources in their own units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu in millicores.
    pub milli_cpu: i64,
    /// memory in bytes.
    pub memory: i64,
    /// ephemeral-storage in bytes.
    pub ephemeral_storage: i64,
    /// The `pods` count (only meaningful for a node's allocatable).
    pub pods: i64,
    /// Every other resource (extended resources, hugepages), by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `ResourceList` JSON object (`{"cpu": "100m", "memory": "1Gi", ...}`).
    /// Non-string values (numbers) are accepted the way JSON clients send them.
    pub fn from_list(list: Option<&Value>) -> Result<Self, QuantityError> {
        let mut r = Resources::default();
        let Some(Value::Object(map)) = list else {
            return Ok(r);
        };
        for (name, v) in map {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(QuantityError::Syntax(v.to_string())),
            };
            let q = Quantity::parse(&text)?;
            r.set(name, &q);
        }
        Ok(r)
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = q.milli_value(),
            "memory" => self.memory = q.value(),
            "ephemeral-storage" => self.ephemeral_storage = q.value(),
            "pods" => self.pods = q.value(),
            other => {
                self.scalar.insert(other.to_string(), q.value());
            }
        }
    }

    /// Adds `other` to `self`, saturating.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` from `self` (used when a pod leaves a node).
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (k, v) in &other.scalar {
            if let Some(e) = self.scalar.get_mut(k) {
                *e = e.saturating_sub(*v);
                if *e == 0 {
                    self.scalar.remove(k);
                }
            }
        }
    }

    /// Per-resource maximum, the rule for init containers that run one at a time.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(*v);
            *e = (*e).max(*v);
        }
    }

    /// Whether nothing at all is requested (cpu, memory, storage, scalars), the case
    /// in which Kubernetes' NodeResourcesFit only checks the pod count.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// What a pod asks of a node: exact requests for filtering and "non-zero" cpu and
/// memory (defaults for missing requests) for scoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// Requests as NodeResourcesFit compares them to allocatable.
    pub requests: Resources,
    /// cpu for scoring, with [`DEFAULT_MILLI_CPU_REQUEST`] for containers without one.
    pub non_zero_milli_cpu: i64,
    /// memory for scoring, with [`DEFAULT_MEMORY_REQUEST`] for containers without one.
    pub non_zero_memory: i64,
}

/// A container's requests; a resource with a limit but no request requests its limit,
/// as the API server's defaulting does.
fn container_requests(c: &Value) -> Result<(Resources, bool, bool), QuantityError> {
    let res = c.get("resources");
    let mut r = Resources::from_list(res.and_then(|r| r.get("limits")))?;
    let req = Resources::from_list(res.and_then(|r| r.get("requests")))?;
    let req_map = res
        .and_then(|r| r.get("requests"))
        .and_then(Value::as_object);
    let has = |n: &str| req_map.is_some_and(|m| m.contains_key(n));
    let lim_map = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
    let has_limit = |n: &str| lim_map.is_some_and(|m| m.contains_key(n));
    // Requests win over limits resource by resource.
    if has("cpu") || !has_limit("cpu") {
        r.milli_cpu = req.milli_cpu;
    }
    if has("memory") || !has_limit("memory") {
        r.memory = req.memory;
    }
    if has("ephemeral-storage") || !has_limit("ephemeral-storage") {
        r.ephemeral_storage = req.ephemeral_storage;
    }
    for (k, v) in req.scalar {
        r.scalar.insert(k, v);
    }
    r.pods = 0;
    let cpu_set = has("cpu") || has_limit("cpu");
    let mem_set = has("memory") || has_limit("memory");
    Ok((r, cpu_set, mem_set))
}

fn non_zero(r: &Resources, cpu_set: bool, mem_set: bool) -> Resources {
    Resources {
        milli_cpu: if cpu_set {
            r.milli_cpu
        } else {
            DEFAULT_MILLI_CPU_REQUEST
        },
        memory: if mem_set {
            r.memory
        } else {
            DEFAULT_MEMORY_REQUEST
        },
        ..Resources::default()
    }
}

/// The effective requests of a pod spec: `max(sum(app containers + sidecars),
/// each init container + the sidecars started before it) + overhead`, as Kubernetes'
/// `PodRequests` (sidecars are init containers with `restartPolicy: Always`).
pub fn pod_requests(spec: &Value) -> Result<PodRequests, QuantityError> {
    let empty = Vec::new();
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let inits = spec
        .get("initContainers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut reqs = Resources::default();
    let mut nz = Resources::default();
    for c in containers {
        let (r, cs, ms) = container_requests(c)?;
        nz.add(&non_zero(&r, cs, ms));
        reqs.add(&r);
    }
    let mut sidecars = Resources::default();
    let mut sidecars_nz = Resources::default();
    let mut init_max = Resources::default();
    let mut init_max_nz = Resources::default();
    for c in inits {
        let (r, cs, ms) = container_requests(c)?;
        let rnz = non_zero(&r, cs, ms);
        let restartable = c.get("restartPolicy").and_then(Value::as_str) == Some("Always");
        if restartable {
            reqs.add(&r);
            nz.add(&rnz);
            sidecars.add(&r);
            sidecars_nz.add(&rnz);
            init_max.max_with(&sidecars);
            init_max_nz.max_with(&sidecars_nz);
        } else {
            let mut t = r;
            t.add(&sidecars);
            init_max.max_with(&t);
            let mut tnz = rnz;
            tnz.add(&sidecars_nz);
            init_max_nz.max_with(&tnz);
        }
    }
    reqs.max_with(&init_max);
    nz.max_with(&init_max_nz);
    let overhead = Resources::from_list(spec.get("overhead"))?;
    reqs.add(&overhead);
    nz.add(&overhead);
    Ok(PodRequests {
        requests: reqs,
        non_zero_milli_cpu: nz.milli_cpu,
        non_zero_memory: nz.memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(req: Value) -> Value {
        json!({"name": "c", "resources": {"requests": req}})
    }

    #[test]
    fn pod_requests_table() {
        // (spec, cpu millis, memory bytes) following Kubernetes' PodRequests examples.
        let cases: Vec<(Value, i64, i64)> = vec![
            // Sum of app containers.
            (
                json!({"containers": [c(json!({"cpu": "100m", "memory": "1Ki"})), c(json!({"cpu": "200m"}))]}),
                300,
                1024,
            ),
            // Init containers run one at a time: the max of them vs the app sum.
            (
                json!({"containers": [c(json!({"cpu": "100m"}))],
                       "initContainers": [c(json!({"cpu": "500m"})), c(json!({"cpu": "300m", "memory": "2Ki"}))]}),
                500,
                2048,
            ),
            // Overhead is added on top.
            (
                json!({"containers": [c(json!({"cpu": "1"}))], "overhead": {"cpu": "250m", "memory": "120Mi"}}),
                1250,
                120 * 1024 * 1024,
            ),
            // A sidecar runs with the app containers and with every later init container.
            (
                json!({"containers": [c(json!({"cpu": "100m"}))],
                       "initContainers": [
                           {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                           c(json!({"cpu": "250m"}))]}),
                450,
                0,
            ),
            // Limits without requests: requests default to limits.
            (
                json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}),
                2000,
                1 << 30,
            ),
        ];
        for (spec, cpu, mem) in cases {
            let r = pod_requests(&spec).unwrap();
            assert_eq!(r.requests.milli_cpu, cpu, "{spec}");
            assert_eq!(r.requests.memory, mem, "{spec}");
        }
    }

    #[test]
    fn non_zero_defaults_only_for_scoring() {
        let spec = json!({"containers": [{"name": "a"}, c(json!({"cpu": "1"}))]});
        let r = pod_requests(&spec).unwrap();
        assert_eq!(r.requests.milli_cpu, 1000);
        assert_eq!(r.requests.memory, 0);
        assert_eq!(r.non_zero_milli_cpu, 1100);
        assert_eq!(r.non_zero_memory, 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn extended_resources_are_scalars() {
        let spec =
            json!({"containers": [c(json!({"nvidia.com/gpu": "2", "hugepages-2Mi": "4Mi"}))]});
        let r = pod_requests(&spec).unwrap();
        assert_eq!(r.requests.scalar.get("nvidia.com/gpu"), Some(&2));
        assert_eq!(r.requests.scalar.get("hugepages-2Mi"), Some(&(4 << 20)));
        assert!(!r.requests.is_zero());
    }

    #[test]
    fn bad_quantity_is_an_error() {
        let spec = json!({"containers": [c(json!({"cpu": "lots"}))]});
        assert!(pod_requests(&spec).is_err());
    }
}
