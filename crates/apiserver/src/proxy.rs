//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: checked here as
//! kube-apiserver checks them (pod, container, node), then proxied to the node's agent.
//! Logs stream through; upgraded streams (WebSocket or SPDY) are spliced byte for byte.

use crate::agents::{AgentError, Endpoint};
use crate::http::{self, Body};
use crate::read;
use crate::route::Target;
use crate::state::{State, decode, parse_query, store_error};
use ::http::{HeaderName, Method, Request, Response, StatusCode, header};
use api::ApiError;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use serde_json::Value;
use std::convert::Infallible;

/// The request headers an upgrade needs the agent to see.
const UPGRADE_REQUEST_HEADERS: [&str; 6] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// The headers of the agent's 101 the client needs to see.
const UPGRADE_RESPONSE_HEADERS: [&str; 5] = [
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// The names of a list of containers, as Go prints `[]string` joined by spaces.
fn names(containers: &Value) -> Vec<&str> {
    containers
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// Picks the container as kube-apiserver does: the one named (which may be a regular,
/// init or ephemeral container), else the only container, else a 400 listing them.
pub fn pick_container(
    pod: &Value,
    pod_name: &str,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let spec = &pod["spec"];
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            let known = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|k| names(&spec[*k]).contains(&c));
            if known {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        None => {
            let containers = names(&spec["containers"]);
            match containers.as_slice() {
                [one] => Ok(one.to_string()),
                [] => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}"
                ))),
                many => {
                    let mut msg = format!(
                        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                        many.join(" ")
                    );
                    let init = names(&spec["initContainers"]);
                    if !init.is_empty() {
                        msg.push_str(&format!(
                            " or one of the init containers: [{}]",
                            init.join(" ")
                        ));
                    }
                    Err(ApiError::bad_request(msg))
                }
            }
        }
    }
}

/// The pod's node, or kube's 400 when it has none yet.
fn node_name<'a>(pod: &'a Value, pod_name: &str) -> Result<&'a str, ApiError> {
    pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {pod_name} does not have a host assigned"))
        })
}

/// Reads a node and where its agent listens.
pub async fn node_endpoint(state: &State, node: &str) -> Result<Endpoint, ApiError> {
    let kv = state
        .store
        .get(&format!("/core/nodes/{node}"))
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {node} does not exist (was it deleted?), so its agent cannot be reached"
            ))
        })?;
    let obj = decode(&kv)?;
    Endpoint::of_node(&obj).ok_or_else(|| {
        ApiError::internal(format!(
            "node {node} reports no address (status.addresses has no InternalIP), so its agent cannot be reached"
        ))
    })
}

fn unreachable(ep: &Endpoint, e: &AgentError) -> ApiError {
    ApiError::unavailable(format!(
        "cannot reach the agent of node {} at https://{}: {e}",
        ep.node,
        ep.authority()
    ))
}

/// Checks the integer log options as kube validates PodLogOptions.
fn check_log_options(
    q: &std::collections::HashMap<String, String>,
    pod_name: &str,
) -> Result<(), ApiError> {
    let int = |k: &str, min: i64, what: &str| -> Result<(), ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(()),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= min => Ok(()),
                Ok(_) => Err(ApiError::invalid(
                    "",
                    "PodLogOptions",
                    pod_name,
                    format!(
                        "PodLogOptions \"{pod_name}\" is invalid: {k}: Invalid value: {v}: {what}"
                    ),
                    vec![api::status::Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("Invalid value: {v}: {what}"),
                        field: k.to_string(),
                    }],
                )),
                Err(_) => Err(ApiError::bad_request(format!(
                    "{k}: invalid value {v:?}: must be an integer"
                ))),
            },
        }
    };
    int("tailLines", 0, "must be greater than or equal to 0")?;
    int("sinceSeconds", 1, "must be greater than 0")?;
    int("limitBytes", 1, "must be greater than 0")?;
    if q.get("sinceSeconds").is_some_and(|v| !v.is_empty())
        && q.get("sinceTime").is_some_and(|v| !v.is_empty())
    {
        return Err(ApiError::bad_request(
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    Ok(())
}

fn origin_form(path: &str, query: Option<&str>) -> Result<::http::Uri, ApiError> {
    let pq = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    pq.parse()
        .map_err(|_| ApiError::bad_request(format!("cannot build the agent path {pq:?}")))
}

/// A body that streams the agent's body as it arrives, ending (cleanly) if the agent's
/// connection fails, and dropping the agent's connection when the client goes away.
fn stream_body(body: Incoming) -> Body {
    let stream = futures::stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        match body.frame().await {
            Some(Ok(frame)) => Some((Ok::<_, Infallible>(frame), Some(body))),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "the agent's stream ended with an error");
                None
            }
            None => None,
        }
    });
    StreamBody::new(stream).boxed()
}

/// Relays the agent's status, content type and body.
fn relay(resp: Response<Incoming>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(stream_body(body));
    *out.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    out
}

fn namespace(t: &Target) -> Result<&str, ApiError> {
    t.namespace
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("pod subresources need a namespace in the path"))
}

/// `GET pods/{name}/log`: streams the container's log from the node agent. With
/// `follow=true` every chunk is passed on as it arrives.
pub async fn logs(
    state: &State,
    t: &Target,
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let ns = namespace(t)?;
    let q = parse_query(req.uri().query());
    let pod = read::get_object(state, t, name).await?;
    let container = pick_container(&pod, name, q.get("container").map(String::as_str))?;
    let node = node_name(&pod, name)?;
    check_log_options(&q, name)?;
    let ep = node_endpoint(state, node).await?;
    let mut agent_req = Request::new(http::full(bytes::Bytes::new()));
    *agent_req.uri_mut() = origin_form(
        &format!("/containerLogs/{ns}/{name}/{container}"),
        req.uri().query(),
    )?;
    let resp = state
        .agents
        .send(&ep, agent_req)
        .await
        .map_err(|e| unreachable(&ep, &e))?;
    let mut out = relay(resp);
    if out.status() == StatusCode::OK && !out.headers().contains_key(header::CONTENT_TYPE) {
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            ::http::HeaderValue::from_static("text/plain"),
        );
    }
    Ok(out)
}

/// `GET|POST pods/{name}/exec|attach|portforward`: forwards the upgrade request to the
/// node agent; on its 101, answers 101 and splices the two upgraded connections until
/// both directions end; otherwise relays the agent's answer (kubectl then falls back
/// from WebSocket to SPDY, or prints the agent's Status).
pub async fn upgrade(
    state: &State,
    t: &Target,
    name: &str,
    sub: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let ns = namespace(t)?;
    let q = parse_query(req.uri().query());
    let pod = read::get_object(state, t, name).await?;
    let path = if sub == "portforward" {
        node_name(&pod, name)?;
        format!("/portForward/{ns}/{name}")
    } else {
        let container = pick_container(&pod, name, q.get("container").map(String::as_str))?;
        node_name(&pod, name)?;
        format!("/{sub}/{ns}/{name}/{container}")
    };
    if !req.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let ep = node_endpoint(state, node_name(&pod, name)?).await?;
    let mut agent_req = Request::new(http::full(bytes::Bytes::new()));
    *agent_req.method_mut() = if req.method() == Method::POST {
        Method::POST
    } else {
        Method::GET
    };
    *agent_req.uri_mut() = origin_form(&path, req.uri().query())?;
    for h in UPGRADE_REQUEST_HEADERS {
        let h = HeaderName::from_static(h);
        for v in req.headers().get_all(&h) {
            agent_req.headers_mut().append(h.clone(), v.clone());
        }
    }
    let mut resp = state
        .agents
        .send(&ep, agent_req)
        .await
        .map_err(|e| unreachable(&ep, &e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(relay(resp));
    }
    let mut out = Response::new(http::full(bytes::Bytes::new()));
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in UPGRADE_RESPONSE_HEADERS {
        let h = HeaderName::from_static(h);
        for v in resp.headers().get_all(&h) {
            out.headers_mut().append(h.clone(), v.clone());
        }
    }
    let client_side = hyper::upgrade::on(&mut req);
    let agent_side = hyper::upgrade::on(&mut resp);
    let what = format!("{sub} {ns}/{name} via node {}", ep.node);
    tokio::spawn(async move {
        let (client, agent) = match tokio::try_join!(client_side, agent_side) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, %what, "the upgrade did not complete");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut agent = hyper_util::rt::TokioIo::new(agent);
        match tokio::io::copy_bidirectional(&mut client, &mut agent).await {
            Ok((up, down)) => tracing::debug!(%what, up, down, "stream ended"),
            Err(e) => tracing::debug!(error = %e, %what, "stream ended with an error"),
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_picked_as_kube_does() {
        let one = json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}],
                                  "ephemeralContainers": [{"name": "dbg"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "a");
        assert_eq!(pick_container(&one, "p", Some("")).unwrap(), "a");
        assert_eq!(pick_container(&one, "p", Some("i")).unwrap(), "i");
        assert_eq!(pick_container(&one, "p", Some("dbg")).unwrap(), "dbg");
        let e = pick_container(&one, "p", Some("x")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container x is not valid for pod p")
        );
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container(&two, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let init = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            pick_container(&init, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(
            node_name(&one, "p").unwrap_err().message,
            "pod p does not have a host assigned"
        );
    }

    #[test]
    fn log_options_are_checked() {
        let q = |s: &str| parse_query(Some(s));
        assert!(check_log_options(&q("tailLines=0&follow=true"), "p").is_ok());
        assert_eq!(
            check_log_options(&q("tailLines=-1"), "p").unwrap_err().code,
            422
        );
        assert_eq!(
            check_log_options(&q("sinceSeconds=0"), "p")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            check_log_options(&q("limitBytes=x"), "p").unwrap_err().code,
            400
        );
        assert_eq!(
            check_log_options(&q("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"), "p")
                .unwrap_err()
                .code,
            400
        );
    }
}
