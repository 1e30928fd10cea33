//! A container's environment: service links, envFrom and env (configMap, secret,
//! downward API and resource fields), resolved against the API as the kubelet does.

use base64::Engine;
use client::{Client, ListParams, Resource};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why the environment cannot be made (CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap or Secret (or key) is missing and not optional.
    #[error("{0}")]
    Missing(String),
    /// The API could not be read.
    #[error("reading {what}: {source}")]
    Api {
        /// What was being read.
        what: String,
        /// The client error.
        source: client::Error,
    },
    /// A fieldRef or resourceFieldRef the agent does not know.
    #[error("unsupported {0}")]
    Unsupported(String),
}

/// Docker-link style variables for every service of the namespace, as Kubernetes
/// gives them (`enableServiceLinks`, default true): `WEB_SERVICE_HOST`, `WEB_PORT` ...
pub fn service_env(services: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Value> = services.iter().collect();
    sorted.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    for s in sorted {
        let ip = s["spec"]["clusterIP"].as_str().unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let Some(name) = s["metadata"]["name"].as_str() else {
            continue;
        };
        let prefix = name.to_uppercase().replace('-', "_");
        let ports = s["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first["port"].to_string()));
        for p in &ports {
            if let Some(pn) = p["name"].as_str().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{prefix}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p["port"].to_string(),
                ));
            }
        }
        let proto = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
        out.push((
            format!("{prefix}_PORT"),
            format!("{}://{ip}:{}", proto(first).to_lowercase(), first["port"]),
        ));
        for p in &ports {
            let pr = proto(p);
            let base = format!("{prefix}_PORT_{}_{}", p["port"], pr);
            out.push((
                base.clone(),
                format!("{}://{ip}:{}", pr.to_lowercase(), p["port"]),
            ));
            out.push((format!("{base}_PROTO"), pr.to_lowercase()));
            out.push((format!("{base}_PORT"), p["port"].to_string()));
            out.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// The value of a downward-API `fieldRef` path.
pub fn field_ref(pod: &Value, path: &str) -> Result<String, EnvError> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let bracket = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")))
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
            .map(str::to_string)
    };
    if let Some(k) = bracket("metadata.labels") {
        return Ok(s(&pod["metadata"]["labels"][k.as_str()]));
    }
    if let Some(k) = bracket("metadata.annotations") {
        return Ok(s(&pod["metadata"]["annotations"][k.as_str()]));
    }
    let kv = |m: &Value| -> String {
        m.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => s(&pod["metadata"]["name"]),
        "metadata.namespace" => s(&pod["metadata"]["namespace"]),
        "metadata.uid" => s(&pod["metadata"]["uid"]),
        "metadata.labels" => kv(&pod["metadata"]["labels"]),
        "metadata.annotations" => kv(&pod["metadata"]["annotations"]),
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.hostIP" => s(&pod["status"]["hostIP"]),
        "status.podIP" => s(&pod["status"]["podIP"]),
        "status.hostIPs" | "status.podIPs" => {
            let field = if path == "status.hostIPs" {
                "hostIPs"
            } else {
                "podIPs"
            };
            pod["status"][field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["ip"].as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        }
        other => return Err(EnvError::Unsupported(format!("fieldRef {other}"))),
    })
}

/// The value of a `resourceFieldRef` (limits default to the node's allocatable).
pub fn resource_field(
    container: &Value,
    resource: &str,
    divisor: Option<&str>,
    node_cpu_millis: i64,
    node_memory: i64,
) -> Result<String, EnvError> {
    use api::quantity::Quantity;
    let (section, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::Unsupported(format!("resourceFieldRef {resource}")))?;
    let q = container["resources"][section][name]
        .as_str()
        .and_then(|s| Quantity::parse(s).ok());
    let div = divisor.and_then(|d| Quantity::parse(d).ok());
    match name {
        "cpu" => {
            let millis = q.map_or(
                if section == "limits" {
                    node_cpu_millis
                } else {
                    0
                },
                |q| q.milli_value(),
            );
            let d = div.map_or(1000, |d| d.milli_value()).max(1);
            Ok(((millis + d - 1) / d).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = q.map_or(if section == "limits" { node_memory } else { 0 }, |q| {
                q.value()
            });
            let d = div.map_or(1, |d| d.value()).max(1);
            Ok(((bytes + d - 1) / d).to_string())
        }
        other => Err(EnvError::Unsupported(format!(
            "resourceFieldRef {section}.{other}"
        ))),
    }
}

/// Reads data of a ConfigMap or Secret (decoded), None when it does not exist.
async fn read_data(
    client: &Client,
    ns: &str,
    secret: bool,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, EnvError> {
    let r = if secret {
        Resource::SECRETS
    } else {
        Resource::CONFIGMAPS
    };
    let kind = if secret { "secret" } else { "configmap" };
    match client.get(&r, Some(ns), name).await {
        Ok(o) => Ok(Some(data_of(&o, secret))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(source) => Err(EnvError::Api {
            what: format!("{kind} {ns}/{name}"),
            source,
        }),
    }
}

/// A ConfigMap's data (and binaryData as lossy text) or a Secret's decoded data.
pub fn data_of(o: &Value, secret: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in o["data"].as_object().into_iter().flatten() {
        let text = v.as_str().unwrap_or("");
        let value = if secret {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        } else {
            text.to_string()
        };
        out.insert(k.clone(), value);
    }
    if !secret {
        for (k, v) in o["binaryData"].as_object().into_iter().flatten() {
            if let Ok(b) =
                base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or(""))
            {
                out.insert(k.clone(), String::from_utf8_lossy(&b).into_owned());
            }
        }
    }
    out
}

/// The container's resolved variables in Kubernetes' order: service links, envFrom,
/// env (each later one overriding), `$(VAR)` expanded against the earlier ones.
pub async fn resolve(
    client: &Client,
    pod: &Value,
    container: &Value,
    node_cpu_millis: i64,
    node_memory: i64,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = vars.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            vars.push((k, v));
        }
    };
    if pod["spec"]["enableServiceLinks"].as_bool() != Some(false) {
        let services = client
            .list(&Resource::SERVICES, Some(ns), &ListParams::default())
            .await
            .map_err(|source| EnvError::Api {
                what: format!("services in {ns}"),
                source,
            })?;
        for (k, v) in service_env(&services.items) {
            set(&mut vars, k, v);
        }
    }
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let (secret, r) = if from["secretRef"].is_object() {
            (true, &from["secretRef"])
        } else {
            (false, &from["configMapRef"])
        };
        let name = r["name"].as_str().unwrap_or("");
        match read_data(client, ns, secret, name).await? {
            Some(data) => {
                for (k, v) in data {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
            None if r["optional"].as_bool() == Some(true) => {}
            None => {
                let kind = if secret { "secret" } else { "configmap" };
                return Err(EnvError::Missing(format!("{kind} \"{name}\" not found")));
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let vf = &e["valueFrom"];
        let value = if let Some(v) = e["value"].as_str() {
            let known: BTreeMap<&str, &str> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            crate::node::spec::expand(v, &known)
        } else if let Some(path) = vf["fieldRef"]["fieldPath"].as_str() {
            field_ref(pod, path)?
        } else if let Some(res) = vf["resourceFieldRef"]["resource"].as_str() {
            resource_field(
                container,
                res,
                vf["resourceFieldRef"]["divisor"].as_str(),
                node_cpu_millis,
                node_memory,
            )?
        } else if vf["configMapKeyRef"].is_object() || vf["secretKeyRef"].is_object() {
            let secret = vf["secretKeyRef"].is_object();
            let r = if secret {
                &vf["secretKeyRef"]
            } else {
                &vf["configMapKeyRef"]
            };
            let (src, key) = (
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            );
            let optional = r["optional"].as_bool() == Some(true);
            let kind = if secret { "secret" } else { "configmap" };
            match read_data(client, ns, secret, src).await? {
                Some(data) => match data.get(key) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::Missing(format!(
                            "couldn't find key {key} in {kind} {ns}/{src}"
                        )));
                    }
                },
                None if optional => continue,
                None => return Err(EnvError::Missing(format!("{kind} \"{src}\" not found"))),
            }
        } else {
            String::new()
        };
        set(&mut vars, name.to_string(), value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_links() {
        let svc = json!({"metadata": {"name": "redis-primary"}, "spec": {"clusterIP": "10.96.0.11", "ports": [
            {"name": "redis", "port": 6379, "protocol": "TCP"}]}});
        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}});
        let env: BTreeMap<String, String> = service_env(&[svc, headless]).into_iter().collect();
        assert_eq!(env["REDIS_PRIMARY_SERVICE_HOST"], "10.96.0.11");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT"], "6379");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT_REDIS"], "6379");
        assert_eq!(env["REDIS_PRIMARY_PORT"], "tcp://10.96.0.11:6379");
        assert_eq!(env["REDIS_PRIMARY_PORT_6379_TCP_ADDR"], "10.96.0.11");
        assert!(!env.contains_key("H_SERVICE_HOST"));
    }

    #[test]
    fn downward_api_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"},
            "status": {"podIP": "10.0.0.3", "podIPs": [{"ip": "10.0.0.3"}]}});
        assert_eq!(field_ref(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(field_ref(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_ref(&pod, "metadata.labels").unwrap(), "app=\"web\"");
        assert_eq!(field_ref(&pod, "spec.nodeName").unwrap(), "n1");
        assert_eq!(field_ref(&pod, "status.podIPs").unwrap(), "10.0.0.3");
        assert!(field_ref(&pod, "spec.nope").is_err());
    }

    #[test]
    fn resource_fields() {
        let c = json!({"resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}}});
        assert_eq!(
            resource_field(&c, "limits.cpu", None, 2000, 1 << 30).unwrap(),
            "2"
        );
        assert_eq!(
            resource_field(&c, "limits.cpu", Some("1m"), 2000, 1 << 30).unwrap(),
            "1500"
        );
        assert_eq!(
            resource_field(&c, "limits.memory", Some("1Mi"), 2000, 1 << 30).unwrap(),
            "64"
        );
        assert_eq!(
            resource_field(&json!({}), "limits.memory", None, 2000, 1024).unwrap(),
            "1024"
        );
    }

    #[test]
    fn secret_data_is_decoded() {
        let s = json!({"data": {"pw": "aHVudGVyMg=="}});
        assert_eq!(data_of(&s, true)["pw"], "hunter2");
    }
}
