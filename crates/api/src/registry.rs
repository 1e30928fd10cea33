//! The resource registry: every served resource with its group, version, kind, plural,
//! scope, short names and subresources. One generic REST handler serves all of them;
//! custom resources are added at run time when their CRD is created.

use serde_json::{Value, json};

/// One served resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// URL plural, e.g. `deployments`.
    pub plural: String,
    /// Lower-case singular, e.g. `deployment`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Subresources served (`status`, `scale`, `binding`, ...).
    pub subresources: Vec<String>,
    /// True for custom resources (served from a CRD).
    pub custom: bool,
}

/// The verbs every resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The list kind, e.g. `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The store key prefix of this resource: `/<group or core>/<plural>/`.
    pub fn key_prefix(&self) -> String {
        let g = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("/{g}/{}/", self.plural)
    }

    /// The store key prefix of one namespace (or of all, for cluster-scoped resources).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// `deployments.apps` for messages.
    pub fn group_resource(&self) -> String {
        crate::status::group_resource(&self.group, &self.plural)
    }

    /// True if `sub` is a served subresource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }
}

// One row of the built-in table: positional on purpose, so the table reads as a table.
#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    all: bool,
    subs: &[&str],
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if all { vec!["all".into()] } else { vec![] },
        subresources: subs.iter().map(|s| s.to_string()).collect(),
        custom: false,
    }
}

/// The built-in resources, in discovery order.
pub fn builtins() -> Vec<ResourceInfo> {
    vec![
        builtin(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            false,
            &["status", "finalize"],
        ),
        builtin(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["po"],
            true,
            &[
                "status",
                "binding",
                "log",
                "exec",
                "attach",
                "portforward",
                "eviction",
                "ephemeralcontainers",
            ],
        ),
        builtin(
            "",
            "v1",
            "Service",
            "services",
            true,
            &["svc"],
            true,
            &["status", "proxy"],
        ),
        builtin(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            &["ep"],
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "Node",
            "nodes",
            false,
            &["no"],
            false,
            &["status", "proxy"],
        ),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            &[],
        ),
        builtin("", "v1", "Secret", "secrets", true, &[], false, &[]),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            &["token"],
        ),
        builtin("", "v1", "Event", "events", true, &["ev"], false, &[]),
        builtin(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            true,
            &["rc"],
            true,
            &["status", "scale"],
        ),
        builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            false,
            &["status"],
        ),
        builtin(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            &["pv"],
            false,
            &["status"],
        ),
        builtin(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            true,
            &["quota"],
            false,
            &["status"],
        ),
        builtin(
            "",
            "v1",
            "LimitRange",
            "limitranges",
            true,
            &["limits"],
            false,
            &[],
        ),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            true,
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            &["ds"],
            true,
            &["status"],
        ),
        builtin(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            true,
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
            &[],
            false,
            &[],
        ),
        builtin("batch", "v1", "Job", "jobs", true, &[], true, &["status"]),
        builtin(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            &["cj"],
            true,
            &["status"],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            true,
            &["status"],
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            false,
            &["status"],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            &[],
        ),
        builtin(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            false,
            &["pc"],
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            false,
            &["status"],
        ),
    ]
}

/// The set of served resources: built-ins plus custom resources from CRDs.
#[derive(Clone, Debug)]
pub struct Registry {
    resources: Vec<ResourceInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            resources: builtins(),
        }
    }
}

impl Registry {
    /// Every served resource.
    pub fn all(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// Finds the resource for a URL's group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Finds a resource by group and kind (any version).
    pub fn find_kind(&self, group: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
    }

    /// The served group-versions, each with its preferred version first: (group, versions).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    /// Replaces the custom resources with those defined by the given CRD objects.
    pub fn set_custom(&mut self, crds: &[Value]) {
        self.resources.retain(|r| !r.custom);
        for crd in crds {
            self.resources.extend(custom_resources(crd));
        }
    }
}

/// The resources one CRD serves (one per served version). Only established CRDs
/// (not being deleted) count.
pub fn custom_resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        spec["names"]["kind"].as_str(),
        spec["names"]["plural"].as_str(),
    ) else {
        return Vec::new();
    };
    if crd["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        return Vec::new();
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions: Vec<&Value> = spec["versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v["served"].as_bool().unwrap_or(true))
                .collect()
        })
        .unwrap_or_default();
    // The storage version is the preferred one: list it first.
    versions.sort_by_key(|v| !v["storage"].as_bool().unwrap_or(false));
    versions
        .into_iter()
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let mut subs = Vec::new();
            if v["subresources"].get("status").is_some() {
                subs.push("status".to_string());
            }
            if v["subresources"].get("scale").is_some() {
                subs.push("scale".to_string());
            }
            Some(ResourceInfo {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: spec["names"]["singular"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| kind.to_lowercase()),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&spec["names"]["shortNames"]),
                categories: strings(&spec["names"]["categories"]),
                subresources: subs,
                custom: true,
            })
        })
        .collect()
}

/// A resource as one entry of an `APIResourceList`.
pub fn api_resource_entries(r: &ResourceInfo) -> Vec<Value> {
    let mut out = vec![json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
        "shortNames": r.short_names,
        "categories": r.categories,
        "storageVersionHash": "",
    })];
    for sub in &r.subresources {
        let (kind, verbs): (&str, &[&str]) = match sub.as_str() {
            "scale" => ("Scale", &["get", "patch", "update"]),
            "status" => (&r.kind, &["get", "patch", "update"]),
            "binding" => ("Binding", &["create"]),
            "eviction" => ("Eviction", &["create"]),
            "log" => ("Pod", &["get"]),
            "exec" | "attach" | "portforward" => ("PodExecOptions", &["create", "get"]),
            "token" => ("TokenRequest", &["create"]),
            "finalize" => ("Namespace", &["update"]),
            "proxy" => (
                "NodeProxyOptions",
                &["create", "delete", "get", "patch", "update"],
            ),
            _ => (&r.kind, &["get", "patch", "update"]),
        };
        let mut e = json!({
            "name": format!("{}/{}", r.plural, sub),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        // Subresources of another group say so (kubectl drain finds policy/v1 Eviction this way).
        let other = match sub.as_str() {
            "scale" => Some(("autoscaling", "v1")),
            "eviction" => Some(("policy", "v1")),
            "token" => Some(("authentication.k8s.io", "v1")),
            _ => None,
        };
        if let Some((g, v)) = other {
            e["group"] = json!(g);
            e["version"] = json!(v);
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped() {
        let reg = Registry::default();
        let d = reg.find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            d.key(Some("default"), "web"),
            "/apps/deployments/default/web"
        );
        let n = reg.find("", "v1", "nodes").unwrap();
        assert_eq!(n.key(Some("default"), "n1"), "/core/nodes/n1");
        assert_eq!(d.api_version(), "apps/v1");
    }

    #[test]
    fn crds_add_resources_per_served_version() {
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [{"name": "v1beta1", "served": true, "storage": false},
                         {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}});
        let mut reg = Registry::default();
        reg.set_custom(&[crd]);
        let w = reg.find("example.com", "v1", "widgets").unwrap();
        assert!(w.custom && w.has_subresource("status"));
        assert!(reg.find("example.com", "v1beta1", "widgets").is_some());
        let groups = reg.groups();
        let (_, versions) = groups.iter().find(|(g, _)| g == "example.com").unwrap();
        assert_eq!(versions, &vec!["v1".to_string(), "v1beta1".to_string()]);
        reg.set_custom(&[]);
        assert!(reg.find("example.com", "v1", "widgets").is_none());
    }
}
