//! Drover's API client, used by every role (scheduler, controllers, node agents): a
//! [`Client`] speaking Kubernetes REST and watch over HTTPS with a bearer token, and the
//! runtime pieces built on it, each usable alone (as in kube-runtime):
//!
//! - [`watcher()`]: list-then-watch as a state machine that re-lists after 410 Gone and
//!   after the stream ends, yielding [`Event`]s;
//! - [`reflector()`]: a read-only [`Store`] cache filled from a watcher;
//! - [`WorkQueue`]: de-duplicating, rate-limited keys with at most one worker per key.
//!
//! Objects stay generic `serde_json::Value`s.
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
pub mod informer;
mod key;
pub mod leader;
mod params;
mod queue;
mod reflector;
mod resource;
mod types;
mod watcher;

pub use client::Client;
pub use config::Config;
pub use error::{Error, Status};
pub use params::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
pub use resource::Resource;
pub use types::{ObjectList, WatchEvent};

pub use informer::{Informers, SharedEvents};
pub use key::ObjectKey;
pub use queue::{Lease, QueueConfig, WorkQueue};
pub use reflector::{IndexFn, Store, Writer, reflect, reflector, store};
pub use watcher::{Event, ListWatch, ResourceClient, WatcherConfig, watcher, watcher_with};
