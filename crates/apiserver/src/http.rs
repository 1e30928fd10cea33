//! Response helpers and content negotiation.

use ::http::{HeaderValue, Response, StatusCode, header};
use api::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::Value;
use std::convert::Infallible;

/// The response body type: a full buffer or a stream (watch, logs).
pub type Body = BoxBody<Bytes, Infallible>;

/// The media type of a Table response.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
/// The media type of aggregated discovery.
pub const DISCOVERY_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response with the given status and content type.
pub fn json_with(status: u16, value: &Value, content_type: &str) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A JSON response.
pub fn json(status: u16, value: &Value) -> Response<Body> {
    json_with(status, value, "application/json")
}

/// An error as a Status response.
pub fn error(e: &ApiError) -> Response<Body> {
    let mut resp = json(e.code, &e.to_status());
    if let Some(s) = e.details.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if e.code == 401 {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drover\""),
        );
    }
    resp
}

/// A plain-text response.
pub fn text(status: u16, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// What representation the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Plain JSON objects.
    Json,
    /// A meta.k8s.io/v1 Table.
    Table,
    /// Aggregated discovery (APIGroupDiscoveryList v2).
    AggregatedDiscovery,
}

/// Picks the representation from the Accept header, in the client's order of preference.
pub fn negotiate(accept: Option<&str>) -> Want {
    let Some(accept) = accept else {
        return Want::Json;
    };
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=Table")
            && (p.contains("v=v1;") || p.ends_with("v=v1") || p.contains("v=v1beta1"))
        {
            return Want::Table;
        }
        if p.contains("g=apidiscovery.k8s.io")
            && p.contains("as=APIGroupDiscoveryList")
            && p.contains("v=v2")
            && !p.contains("v=v2beta1")
        {
            return Want::AggregatedDiscovery;
        }
        if p.starts_with("application/json")
            || p.starts_with("*/*")
            || p.starts_with("application/*")
            || p.starts_with("application/yaml")
        {
            return Want::Json;
        }
    }
    Want::Json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        assert_eq!(
            negotiate(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Want::Table
        );
        assert_eq!(
            negotiate(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            )),
            Want::AggregatedDiscovery
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")),
            Want::Json
        );
        assert_eq!(negotiate(None), Want::Json);
    }
}
