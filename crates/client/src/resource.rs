//! Which REST resource a request addresses, and how its URLs are built.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use std::borrow::Cow;

/// Characters escaped in one URL path segment (RFC 3986 `pchar` keeps the rest).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A REST resource: group, version, URL plural, scope and kind.
///
/// Built-in resources are `const`s ([`Resource::PODS`], ...); custom resources come from
/// [`Resource::new`] or from the server's registry entry (`From<&api::ResourceInfo>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    /// API group, "" for the core group.
    pub group: Cow<'static, str>,
    /// API version, e.g. `v1`.
    pub version: Cow<'static, str>,
    /// The URL plural, e.g. `deployments`.
    pub plural: Cow<'static, str>,
    /// The kind, e.g. `Deployment` (what `create` puts in `kind` when missing).
    pub kind: Cow<'static, str>,
    /// True if objects live in a namespace.
    pub namespaced: bool,
}

macro_rules! builtin {
    ($($(#[$doc:meta])* $name:ident = ($g:literal, $v:literal, $plural:literal, $kind:literal, $ns:literal);)*) => {
        impl Resource {
            $(
                $(#[$doc])*
                pub const $name: Resource = Resource {
                    group: Cow::Borrowed($g),
                    version: Cow::Borrowed($v),
                    plural: Cow::Borrowed($plural),
                    kind: Cow::Borrowed($kind),
                    namespaced: $ns,
                };
            )*
        }
    };
}

builtin! {
    /// `v1` pods.
    PODS = ("", "v1", "pods", "Pod", true);
    /// `v1` nodes (cluster-scoped).
    NODES = ("", "v1", "nodes", "Node", false);
    /// `v1` namespaces (cluster-scoped).
    NAMESPACES = ("", "v1", "namespaces", "Namespace", false);
    /// `v1` services.
    SERVICES = ("", "v1", "services", "Service", true);
    /// `v1` endpoints.
    ENDPOINTS = ("", "v1", "endpoints", "Endpoints", true);
    /// `v1` configmaps.
    CONFIGMAPS = ("", "v1", "configmaps", "ConfigMap", true);
    /// `v1` secrets.
    SECRETS = ("", "v1", "secrets", "Secret", true);
    /// `v1` events.
    EVENTS = ("", "v1", "events", "Event", true);
    /// `v1` service accounts.
    SERVICEACCOUNTS = ("", "v1", "serviceaccounts", "ServiceAccount", true);
    /// `v1` persistent volume claims.
    PERSISTENTVOLUMECLAIMS = ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true);
    /// `v1` persistent volumes (cluster-scoped).
    PERSISTENTVOLUMES = ("", "v1", "persistentvolumes", "PersistentVolume", false);
    /// `apps/v1` deployments.
    DEPLOYMENTS = ("apps", "v1", "deployments", "Deployment", true);
    /// `apps/v1` replica sets.
    REPLICASETS = ("apps", "v1", "replicasets", "ReplicaSet", true);
    /// `apps/v1` daemon sets.
    DAEMONSETS = ("apps", "v1", "daemonsets", "DaemonSet", true);
    /// `apps/v1` stateful sets.
    STATEFULSETS = ("apps", "v1", "statefulsets", "StatefulSet", true);
    /// `apps/v1` controller revisions.
    CONTROLLERREVISIONS = ("apps", "v1", "controllerrevisions", "ControllerRevision", true);
    /// `batch/v1` jobs.
    JOBS = ("batch", "v1", "jobs", "Job", true);
    /// `batch/v1` cron jobs.
    CRONJOBS = ("batch", "v1", "cronjobs", "CronJob", true);
    /// `discovery.k8s.io/v1` endpoint slices.
    ENDPOINTSLICES = ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true);
    /// `coordination.k8s.io/v1` leases (node heartbeats, leader election).
    LEASES = ("coordination.k8s.io", "v1", "leases", "Lease", true);
    /// `autoscaling/v2` horizontal pod autoscalers.
    HORIZONTALPODAUTOSCALERS = ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true);
    /// `policy/v1` pod disruption budgets.
    PODDISRUPTIONBUDGETS = ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true);
    /// `apiextensions.k8s.io/v1` custom resource definitions (cluster-scoped).
    CUSTOMRESOURCEDEFINITIONS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false);
}

impl Resource {
    /// A resource known only at run time (a custom resource).
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        plural: impl Into<String>,
        kind: impl Into<String>,
        namespaced: bool,
    ) -> Resource {
        Resource {
            group: Cow::Owned(group.into()),
            version: Cow::Owned(version.into()),
            plural: Cow::Owned(plural.into()),
            kind: Cow::Owned(kind.into()),
            namespaced,
        }
    }

    /// `apps/v1` or `v1`: the `apiVersion` of this resource's objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL path of the collection, an object or one of its subresources.
    ///
    /// `ns` is ignored for cluster-scoped resources; `None` on a namespaced resource
    /// addresses the collection across all namespaces (list/watch only).
    pub fn path(&self, ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> String {
        let mut p = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespaced
            && let Some(ns) = ns
        {
            p.push_str("/namespaces/");
            p.extend(utf8_percent_encode(ns, SEGMENT));
        }
        p.push('/');
        p.push_str(&self.plural);
        if let Some(name) = name {
            p.push('/');
            p.extend(utf8_percent_encode(name, SEGMENT));
            if let Some(sub) = sub {
                p.push('/');
                p.push_str(sub);
            }
        }
        p
    }
}

impl From<&api::ResourceInfo> for Resource {
    fn from(r: &api::ResourceInfo) -> Resource {
        Resource::new(
            r.group.clone(),
            r.version.clone(),
            r.plural.clone(),
            r.kind.clone(),
            r.namespaced,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_kubernetes_rest_layout() {
        // Core group under /api/v1, named groups under /apis/{group}/{version}.
        assert_eq!(
            Resource::PODS.path(Some("default"), Some("web"), Some("binding")),
            "/api/v1/namespaces/default/pods/web/binding"
        );
        assert_eq!(
            Resource::DEPLOYMENTS.path(Some("ns1"), None, None),
            "/apis/apps/v1/namespaces/ns1/deployments"
        );
        // All namespaces.
        assert_eq!(Resource::PODS.path(None, None, None), "/api/v1/pods");
        // Cluster-scoped resources ignore the namespace.
        assert_eq!(
            Resource::NODES.path(Some("default"), Some("n1"), Some("status")),
            "/api/v1/nodes/n1/status"
        );
        // A name never escapes its path segment.
        assert_eq!(
            Resource::CONFIGMAPS.path(Some("a"), Some("x/y?z"), None),
            "/api/v1/namespaces/a/configmaps/x%2Fy%3Fz"
        );
        assert_eq!(Resource::LEASES.api_version(), "coordination.k8s.io/v1");
        assert_eq!(Resource::PODS.api_version(), "v1");
    }
}
