//! Turns a URL path into what it addresses.

use api::{Registry, ResourceInfo};

/// What a request path addresses.
#[derive(Debug, Clone)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-checks)
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    ResourceList(String, String),
    /// `/openapi/v3`
    OpenApiIndex,
    /// `/openapi/v3/{api/v1 | apis/g/v}`
    OpenApiGroupVersion(String, String),
    /// `/openapi/v2` (not served: kubectl tolerates 404)
    OpenApiV2,
    /// A resource, object or subresource.
    Resource(Box<Target>),
    /// `/apis/metrics.k8s.io/v1beta1/...`: resource usage, scraped from node agents.
    Metrics(crate::metrics::Target),
    /// Nothing here.
    NotFound,
}

/// A resource request target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub info: ResourceInfo,
    /// The namespace in the path, for namespaced resources.
    pub namespace: Option<String>,
    /// The object name, if one is addressed.
    pub name: Option<String>,
    /// The subresource, if any.
    pub sub: Option<String>,
}

/// Parses a request path against the registry.
pub fn parse(path: &str, registry: &Registry) -> Route {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz", ..] => Route::Health,
        ["livez", ..] => Route::Health,
        ["readyz", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::ResourceList(String::new(), v.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", "api", v] => Route::OpenApiGroupVersion(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiGroupVersion(g.to_string(), v.to_string()),
        ["openapi", "v2"] => Route::OpenApiV2,
        [
            "apis",
            crate::metrics::GROUP,
            crate::metrics::VERSION,
            rest @ ..,
        ] if !rest.is_empty() => {
            crate::metrics::parse(rest).map_or(Route::NotFound, Route::Metrics)
        }
        ["api", v, rest @ ..] => resource("", v, rest, registry),
        ["apis", g, v, rest @ ..] => resource(g, v, rest, registry),
        _ => Route::NotFound,
    }
}

fn resource(group: &str, version: &str, rest: &[&str], registry: &Registry) -> Route {
    let target = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        registry.find(group, version, plural).and_then(|info| {
            if ns.is_some() && !info.namespaced {
                return None;
            }
            if let Some(s) = sub
                && !info.has_subresource(s)
            {
                return None;
            }
            Some(Route::Resource(Box::new(Target {
                info: info.clone(),
                namespace: ns.map(str::to_string),
                name: name.map(str::to_string),
                sub: sub.map(str::to_string),
            })))
        })
    };
    let namespaced_plural = |p: &str| {
        registry
            .find(group, version, p)
            .is_some_and(|r| r.namespaced)
    };
    let route = match rest {
        // /namespaces/{ns}/{plural}[/{name}[/{sub}]] when {plural} is a namespaced resource;
        // otherwise /namespaces/{name}[/{sub}] addresses the namespace itself.
        ["namespaces", ns, plural, tail @ ..] if namespaced_plural(plural) => match tail {
            [] => target(plural, Some(ns), None, None),
            [name] => target(plural, Some(ns), Some(name), None),
            [name, sub] => target(plural, Some(ns), Some(name), Some(sub)),
            _ => None,
        },
        [plural] => target(plural, None, None, None),
        [plural, name] => target(plural, None, Some(name), None),
        [plural, name, sub] => target(plural, None, Some(name), Some(sub)),
        _ => None,
    };
    route.unwrap_or(Route::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse(path, &Registry::default()) {
            Route::Resource(t) => *t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let t = target("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(
            (
                t.info.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("deployments", Some("default"), Some("web"), Some("scale"))
        );
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(
            (t.info.plural.as_str(), t.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let t = target("/api/v1/namespaces/x/status");
        assert_eq!(
            (t.name.as_deref(), t.sub.as_deref()),
            (Some("x"), Some("status"))
        );
        let t = target("/api/v1/pods");
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = target("/api/v1/nodes/n1/status");
        assert_eq!(t.sub.as_deref(), Some("status"));
        assert!(matches!(
            parse("/api/v1/namespaces/default/nothings", &Registry::default()),
            Route::NotFound
        ));
        assert!(matches!(
            parse(
                "/api/v1/namespaces/default/pods/p/nosuchsub",
                &Registry::default()
            ),
            Route::NotFound
        ));
    }
}
