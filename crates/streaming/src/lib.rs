//! Kubernetes streaming protocols, server side, as the node agent serves them for `kubectl exec`,
//! `kubectl attach`, `kubectl cp` and `kubectl port-forward`:
//!
//! - [`remotecommand`]: exec/attach over websocket channels (`v5.channel.k8s.io`,
//!   `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`) and over SPDY/3.1 (kubectl's fallback).
//! - [`portforward`]: port-forward over SPDY/3.1, tunnelled in websocket binary messages
//!   (`SPDY/3.1+portforward.k8s.io`) or native (`Upgrade: SPDY/3.1`).
//! - [`spdy`]: the SPDY/3.1 framing and server session both build on.
//!
//! The entry points take the HTTP request and return the response to send at once (101 Switching
//! Protocols, or 400 with a `Status` body); the streaming itself runs in spawned Tokio tasks on the
//! upgraded connection, so the hyper connection must be served with upgrades enabled
//! (`http1::Builder::serve_connection(..).with_upgrades()`, or hyper-util's
//! `serve_connection_with_upgrades`).
#![forbid(unsafe_code)]

pub mod portforward;
pub mod remotecommand;
pub mod spdy;
mod ws;

/// Failures of the streaming protocols.
#[derive(thiserror::Error, Debug)]
pub enum StreamError {
    /// A query parameter of the exec/attach request could not be understood.
    #[error("invalid query parameter {name}={value:?}: {reason}")]
    InvalidQuery {
        /// Parameter name.
        name: String,
        /// Offending value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The request asked for no stream at all.
    #[error("no stream requested: set at least one of stdin, stdout or stderr to true")]
    NoStreams,
    /// The peer broke the SPDY protocol.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// Header block (de)compression failed.
    #[error("SPDY header compression failed: {0}")]
    Compression(String),
    /// The stream was reset (by the peer or by us) or is already fully closed.
    #[error("SPDY stream {0} was reset or is closed")]
    Reset(u32),
    /// The SPDY session ended.
    #[error("SPDY session closed")]
    SessionClosed,
    /// I/O on the underlying connection failed.
    #[error("streaming connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
}
