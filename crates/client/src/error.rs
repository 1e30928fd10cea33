//! The client's one error type. API failures keep the server's `Status` so callers can
//! branch on the Kubernetes reason (404 NotFound, 409 AlreadyExists vs Conflict, 410 Gone)
//! instead of parsing messages.

use serde_json::Value;

/// A Kubernetes `Status` returned by the server for a failed request (or sent as the
/// object of a watch `ERROR` event).
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The HTTP status code (`Status.code`), e.g. 404.
    pub code: u16,
    /// The machine-readable reason (`Status.reason`), e.g. `NotFound`, `AlreadyExists`,
    /// `Conflict`, `Expired`, `Gone`. Empty when the server gave none.
    pub reason: String,
    /// The human-readable message, as kubectl would print it.
    pub message: String,
    /// `Status.details` verbatim (name, kind, causes), when present.
    pub details: Option<Value>,
}

impl Status {
    /// Reads a `Status` object; None if `v` is not one (no numeric `code`).
    pub fn from_value(v: &Value) -> Option<Status> {
        let code = u16::try_from(v.get("code")?.as_u64()?).ok()?;
        Some(Status {
            code,
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            details: v.get("details").cloned(),
        })
    }

    /// A Status for a non-2xx answer whose body was not a Status (a proxy's HTML page,
    /// plain text): the code and a reason derived from it, as client-go does.
    pub fn from_code(code: u16, body: &[u8]) -> Status {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Gone",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        Status {
            code,
            reason: reason.to_string(),
            message: String::from_utf8_lossy(body).trim().to_string(),
            details: None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error `Status` (4xx/5xx, or a watch `ERROR` event).
    /// Boxed: errors travel through every `Result` of the client.
    #[error("API error: {0}")]
    Api(Box<Status>),
    /// The request could not be sent or the connection failed (refused, reset, TLS).
    #[error("HTTP request failed: {0}")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The response body could not be read to its end.
    #[error("reading the response body failed: {0}")]
    Body(#[source] hyper::Error),
    /// The server's answer was not the JSON we expected.
    #[error("decoding {what} failed: {source}")]
    Decode {
        /// What was being decoded (`list response`, `watch event`, ...).
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A request took longer than the client's timeout.
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The kubeconfig or connection settings are unusable.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The TLS settings could not be built (bad CA certificate).
    #[error("TLS configuration failed: {0}")]
    Tls(#[source] rustls::Error),
    /// A kubeconfig or token file could not be read.
    #[error("reading {path} failed: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The server's `Status`, if this is an API error.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP code of an API error.
    pub fn code(&self) -> Option<u16> {
        self.status().map(|s| s.code)
    }

    /// 404: the object (or its namespace, or the resource) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 409 with reason `AlreadyExists`: a create hit an existing name.
    pub fn is_already_exists(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 409 && s.reason == "AlreadyExists")
    }

    /// 409 other than `AlreadyExists`: an update carried a stale resourceVersion (the
    /// optimistic-concurrency failure a controller answers by re-reading and retrying).
    pub fn is_conflict(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 409 && s.reason != "AlreadyExists")
    }

    /// 410 Gone / `Expired`: the resourceVersion or continue token was compacted away;
    /// the caller must re-list.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// True for failures worth retrying unchanged later: transport errors, timeouts,
    /// 429 and 5xx (client-go retries the same set).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http(_) | Error::Body(_) | Error::Timeout(_) => true,
            Error::Api(s) => s.code == 429 || s.code >= 500,
            _ => false,
        }
    }
}
