//! The two caches both the proxy and DNS read: Services and EndpointSlices (or v1
//! Endpoints when the server has no `discovery.k8s.io/v1`).

use crate::model::{Service, Slice};
use client::{Client, ListParams, Resource, Store};
use futures::stream::{BoxStream, StreamExt};
use std::time::Duration;

/// Read side of the caches.
#[derive(Clone)]
pub(crate) struct Cluster {
    services: Store,
    endpoints: Store,
    /// True when `endpoints` holds v1 Endpoints rather than EndpointSlices.
    legacy: bool,
}

impl Cluster {
    /// True once both caches hold a full list.
    pub(crate) fn is_ready(&self) -> bool {
        self.services.is_ready() && self.endpoints.is_ready()
    }

    /// A consistent-enough snapshot of both, parsed.
    pub(crate) fn snapshot(&self) -> (Vec<Service>, Vec<Slice>) {
        let services = self
            .services
            .list()
            .iter()
            .filter_map(|o| Service::from_json(o))
            .collect();
        let slices = self
            .endpoints
            .list()
            .iter()
            .flat_map(|o| {
                if self.legacy {
                    Slice::from_endpoints(o)
                } else {
                    Slice::from_endpoint_slice(o).into_iter().collect()
                }
            })
            .collect();
        (services, slices)
    }
}

/// Starts watching: the caches, and a stream that yields once per change (it must be
/// polled for the caches to fill). Watch errors are logged and retried by the watcher.
pub(crate) async fn watch(
    client: &Client,
    what: &'static str,
) -> (Cluster, BoxStream<'static, ()>) {
    let probe = ListParams {
        limit: Some(1),
        ..ListParams::default()
    };
    // Retried until the server answers: an agent may start its proxy before the API
    // server is reachable, and a transient failure must not leave a node without one.
    let mut backoff = Duration::from_millis(200);
    let legacy = loop {
        match client
            .list_page(&Resource::ENDPOINTSLICES, None, &probe, None)
            .await
        {
            Ok(_) => break false,
            Err(e) if e.is_not_found() => {
                tracing::info!("{what}: the server has no EndpointSlices; using v1 Endpoints");
                break true;
            }
            Err(e) => {
                tracing::warn!("{what}: cannot list EndpointSlices (retrying): {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let eps = if legacy {
        Resource::ENDPOINTS
    } else {
        Resource::ENDPOINTSLICES
    };
    let (services, s_events) = client::reflector(
        client.clone(),
        Resource::SERVICES,
        None,
        ListParams::default(),
    );
    let (endpoints, e_events) = client::reflector(client.clone(), eps, None, ListParams::default());
    let log = move |r: Result<client::Event, client::Error>| {
        if let Err(e) = r {
            tracing::warn!("{what}: watch failed (retrying): {e}");
        }
    };
    let events = futures::stream::select(s_events.map(log), e_events.map(log)).boxed();
    (
        Cluster {
            services,
            endpoints,
            legacy,
        },
        events,
    )
}
