//! Leader election through a `coordination.k8s.io/v1` Lease, with the semantics of
//! client-go's `leaderelection` package, so that several servers can run the same
//! control loop (scheduler, controllers) and exactly one of them acts at a time.
//!
//! - A candidate takes the Lease only when it is absent, released (no holder), already
//!   its own, or **expired by the candidate's own clock**: `leaseDurationSeconds` have
//!   passed since the candidate last saw the Lease's record change. Wall clocks of
//!   different machines are never compared; the written `renewTime` is informational.
//! - Every write is a create or an update carrying the `resourceVersion` read
//!   (optimistic concurrency): a 409 means somebody else wrote first; we read again later.
//! - The leader renews every `retry_period`; when it cannot renew within
//!   `renew_deadline` (or sees another holder) it stops its work **before** the Lease can
//!   expire for the others (`renew_deadline < lease_duration`), then campaigns again.
//! - On shutdown the leader releases the Lease (empty holder, `leaseDurationSeconds: 1`)
//!   so that a successor takes over at once instead of waiting for the expiry.
//!
//! The decision itself ([`Observation::decide`]) is a pure function, tested without I/O.

use crate::{Client, Error, PostParams, Resource};
use serde_json::{Value, json};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;

/// client-go's `JitterFactor`: an acquiring candidate waits between `retry_period` and
/// `retry_period * (1 + JITTER_FACTOR)` between attempts, so candidates do not march in
/// lockstep.
pub const JITTER_FACTOR: f64 = 1.2;

/// The Lease an election is about, e.g. `kube-system/kube-scheduler`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseLock {
    /// The Lease's namespace (`kube-system` for the control plane's loops).
    pub namespace: String,
    /// The Lease's name, shared by every candidate of one election.
    pub name: String,
}

impl LeaseLock {
    /// The Lease `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> LeaseLock {
        LeaseLock {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The election's timing (client-go's `LeaseDuration`, `RenewDeadline`, `RetryPeriod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long others wait, from when they last saw the Lease change, before taking it;
    /// written to `leaseDurationSeconds` (whole seconds, at least 1).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops acting as leader.
    pub renew_deadline: Duration,
    /// The interval between renewals, and (jittered) between acquisition attempts.
    pub retry_period: Duration,
}

impl Default for Timing {
    /// Kubernetes' defaults: 15 s, 10 s, 2 s.
    fn default() -> Timing {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A [`Timing`] that cannot give mutual exclusion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid leader election timing: {0}")]
pub struct InvalidTiming(pub String);

impl Timing {
    /// The Timing from whole seconds (the command-line flags).
    pub fn from_secs(lease_duration: u64, renew_deadline: u64, retry_period: u64) -> Timing {
        Timing {
            lease_duration: Duration::from_secs(lease_duration),
            renew_deadline: Duration::from_secs(renew_deadline),
            retry_period: Duration::from_secs(retry_period),
        }
    }

    /// client-go's checks: the leader must give up (renew deadline) before others may take
    /// over (lease duration), and must get more than one jittered retry in before that.
    pub fn validate(&self) -> Result<(), InvalidTiming> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(InvalidTiming(
                "the lease duration must be at least 1 second".into(),
            ));
        }
        if self.retry_period.is_zero() {
            return Err(InvalidTiming("the retry period must be positive".into()));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(InvalidTiming(format!(
                "the lease duration ({:?}) must be greater than the renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            )));
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(InvalidTiming(format!(
                "the renew deadline ({:?}) must be greater than {JITTER_FACTOR} times the retry period ({:?})",
                self.renew_deadline, self.retry_period
            )));
        }
        Ok(())
    }

    /// `leaseDurationSeconds` as written to the Lease (rounded up, at least 1).
    fn lease_seconds(&self) -> i64 {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }
}

/// The election state kept in a Lease's `spec` (client-go's `LeaderElectionRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds the Lease; empty when nobody does (released).
    pub holder_identity: String,
    /// How long others wait after last seeing a change before taking the Lease.
    pub lease_duration_seconds: i64,
    /// When the holder acquired it (RFC 3339 with microseconds).
    pub acquire_time: Option<String>,
    /// When the holder last renewed it (RFC 3339 with microseconds).
    pub renew_time: Option<String>,
    /// How many times the Lease changed hands.
    pub lease_transitions: i64,
}

impl LeaseRecord {
    /// Reads the record from a Lease object (missing fields read as empty/zero).
    pub fn from_lease(lease: &Value) -> LeaseRecord {
        let spec = &lease["spec"];
        let string = |k: &str| spec.get(k).and_then(Value::as_str).map(str::to_string);
        LeaseRecord {
            holder_identity: string("holderIdentity").unwrap_or_default(),
            lease_duration_seconds: spec
                .get("leaseDurationSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            acquire_time: string("acquireTime"),
            renew_time: string("renewTime"),
            lease_transitions: spec
                .get("leaseTransitions")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        }
    }

    /// Writes the record into `lease.spec`, keeping the spec's other fields.
    pub fn apply_to(&self, lease: &mut Value) {
        if !lease.is_object() {
            *lease = json!({});
        }
        if !lease["spec"].is_object() {
            lease["spec"] = json!({});
        }
        let spec = &mut lease["spec"];
        spec["holderIdentity"] = json!(self.holder_identity);
        spec["leaseDurationSeconds"] = json!(self.lease_duration_seconds);
        spec["leaseTransitions"] = json!(self.lease_transitions);
        for (key, value) in [
            ("acquireTime", &self.acquire_time),
            ("renewTime", &self.renew_time),
        ] {
            match value {
                Some(t) => spec[key] = json!(t),
                None => {
                    if let Some(m) = spec.as_object_mut() {
                        m.remove(key);
                    }
                }
            }
        }
    }

    /// A new Lease object for `lock` holding this record.
    pub fn to_lease(&self, lock: &LeaseLock) -> Value {
        let mut lease = json!({
            "apiVersion": Resource::LEASES.api_version(),
            "kind": "Lease",
            "metadata": {"name": lock.name, "namespace": lock.namespace},
            "spec": {},
        });
        self.apply_to(&mut lease);
        lease
    }
}

/// What a candidate does next, given what it has observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it holding this record.
    Create(LeaseRecord),
    /// Take over a released or expired Lease: update it to this record.
    Acquire(LeaseRecord),
    /// The Lease is ours: update it to this record (same acquire time, later renew time).
    Renew(LeaseRecord),
    /// Somebody else holds a Lease that has not expired by our clock.
    Wait {
        /// The current holder.
        holder: String,
        /// How long, by our clock, until the Lease expires if its holder stays silent.
        remaining: Duration,
    },
}

/// A candidate's memory of the Lease: the record last read and the instant (on this
/// process's monotonic clock) it was first seen in that exact state. Expiry is measured
/// from that instant, never from the `renewTime` written by another machine.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    seen: Option<(LeaseRecord, Instant)>,
}

impl Observation {
    /// Records a read of the Lease at `now`: the clock restarts only if the record
    /// changed since the last read (a silent holder's Lease ages; a renewing one does not).
    pub fn observe(&mut self, record: LeaseRecord, now: Instant) {
        match &self.seen {
            Some((r, _)) if *r == record => {}
            _ => self.seen = Some((record, now)),
        }
    }

    /// Records our own successful write of `record` at `now`.
    pub fn wrote(&mut self, record: LeaseRecord, now: Instant) {
        self.seen = Some((record, now));
    }

    /// Forgets the Lease (it was deleted).
    pub fn clear(&mut self) {
        self.seen = None;
    }

    /// The last record seen.
    pub fn record(&self) -> Option<&LeaseRecord> {
        self.seen.as_ref().map(|(r, _)| r)
    }

    /// True if the last record seen names `identity` as holder (client-go's `IsLeader`).
    pub fn is_held_by(&self, identity: &str) -> bool {
        self.record()
            .is_some_and(|r| !identity.is_empty() && r.holder_identity == identity)
    }

    /// True if the last record seen has not expired at `now` by our clock.
    pub fn is_valid(&self, now: Instant) -> bool {
        self.remaining(now).is_some()
    }

    /// Time left before the observed record expires, if it has not.
    fn remaining(&self, now: Instant) -> Option<Duration> {
        let (record, at) = self.seen.as_ref()?;
        let secs = u64::try_from(record.lease_duration_seconds).unwrap_or(0);
        let expiry = *at + Duration::from_secs(secs);
        (expiry > now).then(|| expiry - now)
    }

    /// The next step for `identity` at `now`; `stamp` is the wall-clock time written as
    /// `acquireTime`/`renewTime`. A Lease that was never observed is absent.
    pub fn decide(&self, identity: &str, now: Instant, stamp: &str, timing: &Timing) -> Decision {
        let mine = LeaseRecord {
            holder_identity: identity.to_string(),
            lease_duration_seconds: timing.lease_seconds(),
            acquire_time: Some(stamp.to_string()),
            renew_time: Some(stamp.to_string()),
            lease_transitions: 0,
        };
        let Some(old) = self.record() else {
            return Decision::Create(mine);
        };
        if self.is_held_by(identity) {
            return Decision::Renew(LeaseRecord {
                acquire_time: old.acquire_time.clone().or(mine.acquire_time),
                lease_transitions: old.lease_transitions,
                ..mine
            });
        }
        if !old.holder_identity.is_empty()
            && let Some(remaining) = self.remaining(now)
        {
            return Decision::Wait {
                holder: old.holder_identity.clone(),
                remaining,
            };
        }
        Decision::Acquire(LeaseRecord {
            lease_transitions: old.lease_transitions.saturating_add(1),
            ..mine
        })
    }

    /// The record that releases our Lease: no holder, `leaseDurationSeconds: 1`.
    pub fn release_record(&self, stamp: &str) -> LeaseRecord {
        LeaseRecord {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(stamp.to_string()),
            renew_time: Some(stamp.to_string()),
            lease_transitions: self.record().map_or(0, |r| r.lease_transitions),
        }
    }
}

/// The result of one acquire-or-renew attempt.
#[derive(Debug)]
enum Attempt {
    /// We hold the Lease now.
    Leading,
    /// Somebody else holds it.
    HeldBy(String),
}

/// Runs one election: campaigns for a Lease and runs the work while it holds it.
///
/// Errors (API down, conflicts) are logged and retried; the elector never panics and
/// never returns on its own except through [`LeaderElector::run_until`]'s shutdown.
pub struct LeaderElector {
    client: Client,
    lock: LeaseLock,
    identity: String,
    timing: Timing,
    leading: watch::Sender<bool>,
    observation: Observation,
    /// The Lease as last read or written (its resourceVersion makes the next update a
    /// compare-and-swap).
    cached: Option<Value>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lock", &self.lock)
            .field("identity", &self.identity)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector for `lock` as `identity` (unique per process: see [`unique_identity`]).
    /// Check `timing` with [`Timing::validate`] first; an invalid one is used as given.
    pub fn new(
        client: Client,
        lock: LeaseLock,
        identity: impl Into<String>,
        timing: Timing,
    ) -> LeaderElector {
        let (leading, _) = watch::channel(false);
        LeaderElector {
            client,
            lock,
            identity: identity.into(),
            timing,
            leading,
            observation: Observation::default(),
            cached: None,
        }
    }

    /// This candidate's identity (what it writes to `holderIdentity`).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// True while this elector is leader and its work runs.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Follows leadership (true while the work runs); usable after `run` took the elector.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Campaigns forever: runs `work()` in its own task each time the Lease is acquired,
    /// and aborts it the moment the Lease cannot be renewed. Never returns; drop the
    /// future to stop (without releasing the Lease: use [`Self::run_until`] for that).
    pub async fn run<F, Fut>(self, work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.run_until(std::future::pending(), work).await;
    }

    /// [`Self::run`] until `shutdown` completes; then stops the work and, if leading,
    /// releases the Lease so that another candidate takes over at once.
    pub async fn run_until<S, F, Fut>(mut self, shutdown: S, mut work: F)
    where
        S: Future<Output = ()>,
        F: FnMut() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut shutdown = pin!(shutdown);
        loop {
            tracing::info!(lease = %self.lock, identity = %self.identity, "attempting to acquire the leader lease");
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = self.acquire() => {}
            }
            tracing::info!(lease = %self.lock, identity = %self.identity, "acquired the leader lease: starting to lead");
            let mut task = AbortOnDrop(Some(tokio::spawn(work())));
            self.leading.send_replace(true);
            let event = self.event("became leader");
            tokio::spawn(event);
            let stopping = tokio::select! {
                biased;
                () = &mut shutdown => true,
                () = self.keep() => false,
            };
            // The work stops before anything else happens: a successor may start soon.
            task.stop().await;
            self.leading.send_replace(false);
            let event = self.event("stopped leading");
            let _ = tokio::time::timeout(self.timing.retry_period, event).await;
            if stopping {
                self.release().await;
                return;
            }
            tracing::warn!(lease = %self.lock, identity = %self.identity, "lost the leader lease: stopped leading");
        }
    }

    /// Records a core/v1 Event about the Lease, as client-go does (`<identity> became
    /// leader`, reason `LeaderElection`), so `kubectl get events -n kube-system` shows
    /// leadership changes. Failures are only logged: events are informational.
    fn event(&self, what: &str) -> impl Future<Output = ()> + Send + 'static {
        let client = self.client.clone();
        let lock = self.lock.clone();
        let now = SystemTime::now();
        let stamp = micro_time(now);
        // Event timestamps are whole seconds (`Time`, not `MicroTime`).
        let seconds = format!("{}Z", stamp.split('.').next().unwrap_or(&stamp));
        let mut involved = json!({
            "apiVersion": Resource::LEASES.api_version(),
            "kind": "Lease",
            "name": lock.name,
            "namespace": lock.namespace,
        });
        if let Some(meta) = self.cached.as_ref().map(|l| &l["metadata"]) {
            for key in ["uid", "resourceVersion"] {
                if let Some(v) = meta.get(key) {
                    involved[key] = v.clone();
                }
            }
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{}.{:016x}", lock.name, random_u64()),
                "namespace": lock.namespace,
            },
            "involvedObject": involved,
            "reason": "LeaderElection",
            "message": format!("{} {what}", self.identity),
            "type": "Normal",
            "source": {"component": lock.name},
            "firstTimestamp": seconds,
            "lastTimestamp": seconds,
            "count": 1,
            "reportingComponent": lock.name,
            "reportingInstance": self.identity,
        });
        async move {
            let events = Resource::EVENTS;
            if let Err(e) = client
                .create(
                    &events,
                    Some(&lock.namespace),
                    &event,
                    &PostParams::default(),
                )
                .await
            {
                tracing::debug!(lease = %lock, "cannot record a leader election event: {e}");
            }
        }
    }

    /// Tries until the Lease is ours.
    async fn acquire(&mut self) {
        let mut last_holder = String::new();
        loop {
            let budget = self.timing.renew_deadline.max(self.timing.retry_period);
            match tokio::time::timeout(budget, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Leading)) => return,
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    if holder != last_holder {
                        tracing::info!(lease = %self.lock, %holder, "the leader lease is held by another candidate");
                        last_holder = holder;
                    }
                }
                Ok(Err(e)) if e.is_conflict() || e.is_already_exists() => {
                    tracing::debug!(lease = %self.lock, "another candidate wrote the lease first: {e}")
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.lock, "cannot acquire the leader lease (retrying): {e}")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lock, "acquiring the leader lease timed out (retrying)")
                }
            }
            tokio::time::sleep(jittered(self.timing.retry_period)).await;
        }
    }

    /// Renews every retry period; returns when a renewal did not succeed within the
    /// renew deadline, or another holder shows up.
    async fn keep(&mut self) {
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            let deadline = Instant::now() + self.timing.renew_deadline;
            loop {
                let result = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await;
                match result {
                    Ok(Ok(Attempt::Leading)) => break,
                    Ok(Ok(Attempt::HeldBy(holder))) => {
                        tracing::warn!(lease = %self.lock, %holder, "the leader lease was taken by another candidate");
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(lease = %self.lock, "cannot renew the leader lease (retrying until the renew deadline): {e}")
                    }
                    Err(_) => {}
                }
                // Another attempt only if it can start before the deadline.
                if Instant::now() + self.timing.retry_period >= deadline {
                    tracing::warn!(lease = %self.lock, "the leader lease was not renewed within the renew deadline ({:?})", self.timing.renew_deadline);
                    return;
                }
                tokio::time::sleep(self.timing.retry_period).await;
            }
        }
    }

    /// One client-go `tryAcquireOrRenew`: the optimistic renewal from the cached Lease
    /// while we hold a valid one, else a read, a decision and a create/update.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, Error> {
        let now = Instant::now();
        let stamp = micro_time(SystemTime::now());
        let lock = self.lock.clone();
        let ns = Some(lock.namespace.as_str());
        let pp = PostParams::default();

        // 1. Fast path: update the Lease we last wrote, without reading it first.
        if self.observation.is_held_by(&self.identity)
            && self.observation.is_valid(now)
            && let Some(cached) = &self.cached
            && let Decision::Renew(record) =
                self.observation
                    .decide(&self.identity, now, &stamp, &self.timing)
        {
            let mut lease = cached.clone();
            record.apply_to(&mut lease);
            match self
                .client
                .replace(&Resource::LEASES, ns, &lock.name, &lease, &pp)
                .await
            {
                Ok(written) => {
                    self.observation.wrote(record, now);
                    self.cached = Some(written);
                    return Ok(Attempt::Leading);
                }
                Err(e) => {
                    tracing::debug!(lease = %lock, "optimistic renewal failed, reading the lease: {e}")
                }
            }
        }

        // 2. Read (or create) the Lease.
        let lease = match self.client.get(&Resource::LEASES, ns, &lock.name).await {
            Ok(lease) => lease,
            Err(e) if e.is_not_found() => {
                self.observation.clear();
                self.cached = None;
                let record =
                    match self
                        .observation
                        .decide(&self.identity, now, &stamp, &self.timing)
                    {
                        Decision::Create(r) | Decision::Acquire(r) | Decision::Renew(r) => r,
                        // Not with nothing observed; harmless if it ever were.
                        Decision::Wait { holder, .. } => return Ok(Attempt::HeldBy(holder)),
                    };
                let written = self
                    .client
                    .create(&Resource::LEASES, ns, &record.to_lease(&lock), &pp)
                    .await?;
                self.observation.wrote(record, now);
                self.cached = Some(written);
                return Ok(Attempt::Leading);
            }
            Err(e) => return Err(e),
        };

        // 3. Decide from what we observed, by our clock.
        self.observation
            .observe(LeaseRecord::from_lease(&lease), now);
        let record = match self
            .observation
            .decide(&self.identity, now, &stamp, &self.timing)
        {
            Decision::Wait { holder, .. } => {
                self.cached = Some(lease);
                return Ok(Attempt::HeldBy(holder));
            }
            Decision::Create(r) | Decision::Acquire(r) | Decision::Renew(r) => r,
        };

        // 4. Compare-and-swap with the resourceVersion just read.
        let mut updated = lease.clone();
        record.apply_to(&mut updated);
        self.cached = Some(lease);
        let written = self
            .client
            .replace(&Resource::LEASES, ns, &lock.name, &updated, &pp)
            .await?;
        self.observation.wrote(record, now);
        self.cached = Some(written);
        Ok(Attempt::Leading)
    }

    /// Gives the Lease up if we hold it, within one renew deadline.
    async fn release(&mut self) {
        if !self.observation.is_held_by(&self.identity) {
            return;
        }
        let lock = self.lock.clone();
        let budget = self.timing.renew_deadline.max(Duration::from_secs(1));
        let release = async {
            for _ in 0..3 {
                let lease = match self.cached.take() {
                    Some(l) => l,
                    None => {
                        match self
                            .client
                            .get(&Resource::LEASES, Some(&lock.namespace), &lock.name)
                            .await
                        {
                            Ok(l) => l,
                            Err(e) => return Err(e),
                        }
                    }
                };
                if LeaseRecord::from_lease(&lease).holder_identity != self.identity {
                    return Ok(false);
                }
                let stamp = micro_time(SystemTime::now());
                let record = self.observation.release_record(&stamp);
                let mut updated = lease;
                record.apply_to(&mut updated);
                match self
                    .client
                    .replace(
                        &Resource::LEASES,
                        Some(&lock.namespace),
                        &lock.name,
                        &updated,
                        &PostParams::default(),
                    )
                    .await
                {
                    Ok(written) => {
                        self.observation.wrote(record, Instant::now());
                        self.cached = Some(written);
                        return Ok(true);
                    }
                    // Stale cache: read again and retry.
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(false)
        };
        match tokio::time::timeout(budget, release).await {
            Ok(Ok(true)) => {
                tracing::info!(lease = %lock, identity = %self.identity, "released the leader lease")
            }
            Ok(Ok(false)) => {
                tracing::info!(lease = %lock, "the leader lease was no longer ours to release")
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %lock, "cannot release the leader lease (others take it when it expires): {e}")
            }
            Err(_) => {
                tracing::warn!(lease = %lock, "releasing the leader lease timed out (others take it when it expires)")
            }
        }
    }
}

/// Aborts the leader's work task when leadership ends, or when the elector is dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts the task and waits until it is gone (its future dropped).
    async fn stop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
            let _ = h.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// `prefix_` followed by 32 random hex digits: a candidate identity unique per process
/// (client-go's `hostname_uuid`), so a restarted process is a new candidate.
pub fn unique_identity(prefix: &str) -> String {
    format!("{prefix}_{:016x}{:016x}", random_u64(), random_u64())
}

/// A random number from the standard library's randomly keyed hasher (enough for
/// identities and jitter; not for secrets).
fn random_u64() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, std::process::id()))
}

/// `period` plus up to `JITTER_FACTOR * period` (client-go's `wait.Jitter`).
fn jittered(period: Duration) -> Duration {
    let unit = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    period + period.mul_f64(JITTER_FACTOR * unit)
}

/// A Kubernetes `MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
pub fn micro_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_micros()
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "me_1";
    const OTHER: &str = "other_2";

    fn held(holder: &str, secs: i64, transitions: i64, renew: &str) -> LeaseRecord {
        LeaseRecord {
            holder_identity: holder.into(),
            lease_duration_seconds: secs,
            acquire_time: Some("2026-01-01T00:00:00.000000Z".into()),
            renew_time: Some(renew.into()),
            lease_transitions: transitions,
        }
    }

    #[test]
    fn an_absent_lease_is_created_holding_it() {
        let obs = Observation::default();
        let t0 = Instant::now();
        let d = obs.decide(ME, t0, "T0", &Timing::default());
        assert_eq!(
            d,
            Decision::Create(LeaseRecord {
                holder_identity: ME.into(),
                lease_duration_seconds: 15,
                acquire_time: Some("T0".into()),
                renew_time: Some("T0".into()),
                lease_transitions: 0,
            })
        );
    }

    #[test]
    fn a_held_lease_is_waited_for_until_it_expires_by_our_own_clock() {
        let timing = Timing::default();
        let mut obs = Observation::default();
        let t0 = Instant::now();
        // The other's renewTime is far in the past by wall clock: irrelevant, we have
        // only just seen this record.
        obs.observe(held(OTHER, 15, 3, "1999-01-01T00:00:00.000000Z"), t0);
        assert_eq!(
            obs.decide(ME, t0 + Duration::from_secs(5), "T", &timing),
            Decision::Wait {
                holder: OTHER.into(),
                remaining: Duration::from_secs(10)
            }
        );
        // Seeing the same record again does not restart the clock.
        obs.observe(
            held(OTHER, 15, 3, "1999-01-01T00:00:00.000000Z"),
            t0 + Duration::from_secs(14),
        );
        let d = obs.decide(ME, t0 + Duration::from_secs(15), "T15", &timing);
        assert_eq!(
            d,
            Decision::Acquire(LeaseRecord {
                holder_identity: ME.into(),
                lease_duration_seconds: 15,
                acquire_time: Some("T15".into()),
                renew_time: Some("T15".into()),
                lease_transitions: 4,
            })
        );
    }

    #[test]
    fn a_renewal_seen_restarts_the_expiry_clock() {
        let timing = Timing::default();
        let mut obs = Observation::default();
        let t0 = Instant::now();
        obs.observe(held(OTHER, 15, 0, "R1"), t0);
        // Renewed (renewTime changed) at t0+10: valid until t0+25.
        obs.observe(held(OTHER, 15, 0, "R2"), t0 + Duration::from_secs(10));
        assert!(matches!(
            obs.decide(ME, t0 + Duration::from_secs(20), "T", &timing),
            Decision::Wait { remaining, .. } if remaining == Duration::from_secs(5)
        ));
        assert!(matches!(
            obs.decide(ME, t0 + Duration::from_secs(25), "T", &timing),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn the_holders_lease_duration_counts_not_ours() {
        // The holder wrote 300 s; our own 15 s does not let us take it earlier.
        let mut obs = Observation::default();
        let t0 = Instant::now();
        obs.observe(held(OTHER, 300, 0, "R"), t0);
        assert!(matches!(
            obs.decide(ME, t0 + Duration::from_secs(200), "T", &Timing::default()),
            Decision::Wait { .. }
        ));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut obs = Observation::default();
        let t0 = Instant::now();
        let released = Observation {
            seen: Some((held(OTHER, 15, 7, "R"), t0)),
        }
        .release_record("T");
        assert_eq!(released.holder_identity, "");
        assert_eq!(released.lease_duration_seconds, 1);
        assert_eq!(released.lease_transitions, 7);
        obs.observe(released, t0);
        match obs.decide(ME, t0, "T0", &Timing::default()) {
            Decision::Acquire(r) => {
                assert_eq!(r.holder_identity, ME);
                assert_eq!(r.lease_transitions, 8);
            }
            d => panic!("expected Acquire, got {d:?}"),
        }
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let mut obs = Observation::default();
        let t0 = Instant::now();
        obs.wrote(held(ME, 15, 2, "R"), t0);
        // Even expired by our clock (we were slow), our own lease is renewed, not re-acquired.
        let d = obs.decide(ME, t0 + Duration::from_secs(60), "T60", &Timing::default());
        assert_eq!(
            d,
            Decision::Renew(LeaseRecord {
                holder_identity: ME.into(),
                lease_duration_seconds: 15,
                acquire_time: Some("2026-01-01T00:00:00.000000Z".into()),
                renew_time: Some("T60".into()),
                lease_transitions: 2,
            })
        );
        assert!(obs.is_held_by(ME));
        assert!(!obs.is_held_by(OTHER));
        assert!(!obs.is_valid(t0 + Duration::from_secs(15)));
        assert!(obs.is_valid(t0 + Duration::from_secs(14)));
    }

    #[test]
    fn an_empty_identity_never_counts_as_holding_a_released_lease() {
        let mut obs = Observation::default();
        obs.observe(held("", 1, 0, "R"), Instant::now());
        assert!(!obs.is_held_by(""));
    }

    #[test]
    fn records_round_trip_through_lease_objects_keeping_other_fields() {
        let lock = LeaseLock::new("kube-system", "kube-scheduler");
        let r = held(ME, 15, 1, "2026-11-23T16:00:00.123456Z");
        let mut lease = r.to_lease(&lock);
        assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(lease["kind"], "Lease");
        assert_eq!(lease["metadata"]["namespace"], "kube-system");
        assert_eq!(lease["spec"]["holderIdentity"], ME);
        assert_eq!(LeaseRecord::from_lease(&lease), r);
        lease["spec"]["strategy"] = json!("OldestEmulationVersion");
        lease["metadata"]["resourceVersion"] = json!("42");
        let released = Observation::default().release_record("T");
        released.apply_to(&mut lease);
        assert_eq!(lease["spec"]["strategy"], "OldestEmulationVersion");
        assert_eq!(lease["metadata"]["resourceVersion"], "42");
        assert_eq!(LeaseRecord::from_lease(&lease), released);
        assert_eq!(
            LeaseRecord::from_lease(&json!({"metadata": {}})),
            LeaseRecord::default()
        );
    }

    #[test]
    fn timing_is_checked_like_client_go() {
        assert_eq!(Timing::default(), Timing::from_secs(15, 10, 2));
        assert!(Timing::default().validate().is_ok());
        assert!(Timing::from_secs(10, 10, 2).validate().is_err());
        assert!(Timing::from_secs(15, 2, 2).validate().is_err());
        assert!(Timing::from_secs(15, 10, 0).validate().is_err());
        assert!(Timing::from_secs(0, 0, 0).validate().is_err());
        assert!(Timing::from_secs(300, 10, 1).validate().is_ok());
        let t = Timing {
            lease_duration: Duration::from_millis(1500),
            ..Timing::default()
        };
        assert_eq!(t.lease_seconds(), 2);
    }

    #[test]
    fn micro_time_is_rfc3339_utc_with_microseconds() {
        assert_eq!(micro_time(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(micro_time(t), "2023-11-14T22:13:20.123456Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(micro_time(t), "2000-02-29T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(micro_time(t), "2099-12-31T23:59:59.000000Z");
    }

    #[test]
    fn identities_are_unique_and_jitter_stays_in_range() {
        let a = unique_identity("host");
        let b = unique_identity("host");
        assert!(
            a.starts_with("host_") && a.len() == "host_".len() + 32,
            "{a}"
        );
        assert_ne!(a, b);
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(2) && j <= Duration::from_millis(4400));
        }
    }
}
