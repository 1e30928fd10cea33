//! The scheduling queue: Kubernetes' PriorityQueue reduced to its three parts.
//!
//! ```text
//!   add ──▶ activeQ ──pop──▶ in flight ──done──▶ (forgotten)
//!             ▲                 │ unschedulable: no cluster change since pop
//!             │                 ▼
//!             │           unschedulable ──cluster change / 5 min──┐
//!             │                 │ (a change during the attempt)   │
//!             │                 ▼                                 ▼
//!             └──back-off over── backoffQ ◀───────────────────────┘
//! ```
//!
//! - **activeQ** holds pods ready to be tried, highest `spec.priority` first, then
//!   first come first served.
//! - A pod that did not fit waits in **unschedulable** until something changes in the
//!   cluster (a node added or changed, a pod removed: [`SchedulingQueue::move_all`]),
//!   or for `max_unschedulable` at most (Kubernetes' podMaxInUnschedulablePodsDuration,
//!   5 minutes), because retrying an unchanged cluster gives the same answer.
//! - **backoffQ**: a moved pod still waits out its back-off, `initial * 2^(attempts-1)`
//!   capped at `max` (Kubernetes: 1 s to 10 s), so a flapping cluster cannot make one
//!   pod hog the scheduler.
//!
//! A change that happens while a pod is being tried is not lost: its failure then goes
//! to backoffQ instead of unschedulable (Kubernetes' moveRequestCycle). Keys are
//! `namespace/name`. Time is tokio's, so tests run under `tokio::time::pause()`.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Back-off settings of a [`SchedulingQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Back-off after the first failed attempt (Kubernetes' podInitialBackoffSeconds, 1 s).
    pub initial_backoff: Duration,
    /// Cap of the back-off (podMaxBackoffSeconds, 10 s).
    pub max_backoff: Duration,
    /// Longest stay among unschedulable pods without a cluster change before a retry
    /// (podMaxInUnschedulablePodsDuration, 5 min).
    pub max_unschedulable: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    InFlight,
}

#[derive(Debug)]
struct Entry {
    place: Place,
    priority: i64,
    /// Order of arrival in activeQ (FIFO among equal priorities).
    seq: u64,
    attempts: u32,
    last_failure: Option<Instant>,
    /// `move_cycle` when the pod was popped.
    popped_cycle: u64,
    /// The pod itself changed while it was in flight.
    updated_in_flight: bool,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BTreeSet<(Reverse<i64>, u64, String)>,
    backoff: BTreeSet<(Instant, String)>,
    unschedulable: BTreeSet<(Instant, String)>,
    seq: u64,
    move_cycle: u64,
    closed: bool,
}

/// The queue of pods waiting for a node; see the module docs. Shared by reference
/// (wrap it in an `Arc`); one or more workers call [`SchedulingQueue::pop`].
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    config: QueueConfig,
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Inner {
    fn unlink(&mut self, key: &str) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        match e.place {
            Place::Active => {
                self.active
                    .remove(&(Reverse(e.priority), e.seq, key.to_string()));
            }
            Place::Backoff(t) => {
                self.backoff.remove(&(t, key.to_string()));
            }
            Place::Unschedulable(t) => {
                self.unschedulable.remove(&(t, key.to_string()));
            }
            Place::InFlight => {}
        }
    }

    fn make_active(&mut self, key: &str) {
        self.unlink(key);
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(key) {
            e.place = Place::Active;
            e.seq = seq;
            self.active
                .insert((Reverse(e.priority), seq, key.to_string()));
        }
    }

    fn make_backoff_or_active(&mut self, key: &str, config: &QueueConfig, now: Instant) {
        let ready = match self.entries.get(key) {
            Some(e) => e
                .last_failure
                .map(|t| t + backoff_for(config, e.attempts))
                .unwrap_or(now),
            None => return,
        };
        if ready <= now {
            self.make_active(key);
            return;
        }
        self.unlink(key);
        if let Some(e) = self.entries.get_mut(key) {
            e.place = Place::Backoff(ready);
            self.backoff.insert((ready, key.to_string()));
        }
    }

    /// Moves due back-offs to activeQ and long-waiting unschedulable pods out; returns
    /// when the next such deadline falls.
    fn promote(&mut self, config: &QueueConfig, now: Instant) -> Option<Instant> {
        while let Some((t, key)) = self.backoff.first().cloned() {
            if t > now {
                break;
            }
            self.make_active(&key);
        }
        while let Some((since, key)) = self.unschedulable.first().cloned() {
            if since + config.max_unschedulable > now {
                break;
            }
            self.make_backoff_or_active(&key, config, now);
        }
        let b = self.backoff.first().map(|(t, _)| *t);
        let u = self
            .unschedulable
            .first()
            .map(|(t, _)| *t + config.max_unschedulable);
        match (b, u) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// `initial * 2^(attempts-1)`, capped; no wait before the first attempt.
fn backoff_for(config: &QueueConfig, attempts: u32) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(attempts - 1).unwrap_or(u32::MAX);
    config
        .initial_backoff
        .checked_mul(factor)
        .unwrap_or(config.max_backoff)
        .min(config.max_backoff)
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        SchedulingQueue {
            config,
            inner: Mutex::default(),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pending pod appeared or its spec/labels changed. New pods go to activeQ; an
    /// unschedulable pod that changed is retried once its back-off is over (the change
    /// may make it fit); a pod being tried right now gets its failure retried too.
    pub fn add(&self, key: &str, priority: i64) {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.entries.get_mut(key) {
            None => {
                inner.entries.insert(
                    key.to_string(),
                    Entry {
                        place: Place::Active,
                        priority,
                        seq: 0,
                        attempts: 0,
                        last_failure: None,
                        popped_cycle: 0,
                        updated_in_flight: false,
                    },
                );
                inner.make_active(key);
            }
            Some(e) => match e.place {
                Place::InFlight => e.updated_in_flight = true,
                Place::Unschedulable(_) => {
                    e.priority = priority;
                    inner.make_backoff_or_active(key, &self.config, now);
                }
                Place::Active if e.priority != priority => {
                    e.priority = priority;
                    inner.make_active(key);
                }
                Place::Active | Place::Backoff(_) => e.priority = priority,
            },
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Forgets a pod (deleted, bound by someone else, no longer ours), wherever it is.
    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        inner.unlink(key);
        inner.entries.remove(key);
    }

    /// Waits for the next pod to try and marks it in flight; None once closed. The
    /// caller must end the attempt with [`SchedulingQueue::done`],
    /// [`SchedulingQueue::unschedulable`] or [`SchedulingQueue::error`].
    pub async fn pop(&self) -> Option<String> {
        loop {
            let next = {
                let now = Instant::now();
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                let next = inner.promote(&self.config, now);
                if let Some((_, _, key)) = inner.active.pop_first() {
                    let cycle = inner.move_cycle;
                    if let Some(e) = inner.entries.get_mut(&key) {
                        e.place = Place::InFlight;
                        e.popped_cycle = cycle;
                        e.updated_in_flight = false;
                    }
                    return Some(key);
                }
                next
            };
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// The attempt succeeded (the pod is bound or being bound): forget its back-off.
    pub fn done(&self, key: &str) {
        let mut inner = self.lock();
        if matches!(inner.entries.get(key), Some(e) if e.place == Place::InFlight) {
            inner.entries.remove(key);
        }
    }

    /// The pod fits no node. It waits among unschedulable pods for a cluster change,
    /// unless one already happened during the attempt: then it only backs off.
    pub fn unschedulable(&self, key: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        let cycle = inner.move_cycle;
        let Some(e) = inner.entries.get_mut(key) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.attempts = e.attempts.saturating_add(1);
        e.last_failure = Some(now);
        if e.popped_cycle < cycle || e.updated_in_flight {
            inner.make_backoff_or_active(key, &self.config, now);
        } else {
            e.place = Place::Unschedulable(now);
            inner.unschedulable.insert((now, key.to_string()));
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// The attempt failed for a reason unrelated to the cluster's shape (an API
    /// error): retry after the back-off, without waiting for a change.
    pub fn error(&self, key: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(e) = inner.entries.get_mut(key) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.attempts = e.attempts.saturating_add(1);
        e.last_failure = Some(now);
        inner.make_backoff_or_active(key, &self.config, now);
        drop(inner);
        self.notify.notify_one();
    }

    /// Something changed in the cluster that may let unschedulable pods fit (a node
    /// added or changed, a pod removed): every unschedulable pod is retried once its
    /// back-off is over.
    pub fn move_all(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.move_cycle += 1;
        let keys: Vec<String> = inner.unschedulable.iter().map(|(_, k)| k.clone()).collect();
        for k in keys {
            inner.make_backoff_or_active(&k, &self.config, now);
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Stops the queue: [`SchedulingQueue::pop`] returns None from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// How many pods the queue holds, in any state (in flight included).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the queue holds no pod.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many pods wait for a cluster change.
    pub fn num_unschedulable(&self) -> usize {
        self.lock().unschedulable.len()
    }

    /// How many failed attempts a pod has had (0 if unknown).
    pub fn attempts(&self, key: &str) -> u32 {
        self.lock().entries.get(key).map_or(0, |e| e.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn q() -> Arc<SchedulingQueue> {
        Arc::new(SchedulingQueue::new(QueueConfig::default()))
    }

    /// Pops with a deadline: None if nothing comes within `d` (paused time advances).
    async fn pop_within(q: &SchedulingQueue, d: Duration) -> Option<String> {
        tokio::time::timeout(d, q.pop()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_first_then_fifo() {
        // Kubernetes' activeQ orders by priority, then by the time the pod was queued.
        let q = q();
        q.add("ns/a", 0);
        q.add("ns/b", 100);
        q.add("ns/c", 0);
        assert_eq!(q.pop().await.unwrap(), "ns/b");
        assert_eq!(q.pop().await.unwrap(), "ns/a");
        assert_eq!(q.pop().await.unwrap(), "ns/c");
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_adds_are_one_entry() {
        let q = q();
        q.add("ns/a", 0);
        q.add("ns/a", 0);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().await.unwrap(), "ns/a");
        assert_eq!(pop_within(&q, Duration::from_secs(1000)).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_waits_for_a_cluster_change() {
        let q = q();
        q.add("ns/a", 0);
        let k = q.pop().await.unwrap();
        q.unschedulable(&k);
        assert_eq!(q.num_unschedulable(), 1);
        // Nothing changed: no retry for minutes (less than the 5 minute flush).
        assert_eq!(pop_within(&q, Duration::from_secs(200)).await, None);
        q.move_all();
        // The 1 s back-off is long over: retried at once.
        assert_eq!(
            pop_within(&q, Duration::from_millis(1)).await.unwrap(),
            "ns/a"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn moved_pod_still_waits_out_its_backoff() {
        let q = q();
        q.add("ns/a", 0);
        let mut k = q.pop().await.unwrap();
        for attempt in 1..=5u32 {
            q.unschedulable(&k);
            assert_eq!(q.attempts("ns/a"), attempt);
            q.move_all();
            // 1 s, 2 s, 4 s, 8 s, then capped at 10 s (Kubernetes' defaults).
            let want = Duration::from_secs(u64::from(1u32 << (attempt - 1)).min(10));
            let start = Instant::now();
            assert_eq!(
                pop_within(&q, want - Duration::from_millis(1)).await,
                None,
                "attempt {attempt} retried before its back-off"
            );
            k = pop_within(&q, Duration::from_millis(2)).await.unwrap();
            assert_eq!(k, "ns/a");
            assert_eq!(Instant::now() - start, want);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn change_during_attempt_is_not_lost() {
        // Kubernetes' moveRequestCycle: a node added while a pod was being tried sends
        // its failure to the back-off queue, not to the unschedulable pods.
        let q = q();
        q.add("ns/a", 0);
        let k = q.pop().await.unwrap();
        q.move_all();
        q.unschedulable(&k);
        assert_eq!(q.num_unschedulable(), 0);
        let start = Instant::now();
        assert_eq!(
            pop_within(&q, Duration::from_secs(5)).await.unwrap(),
            "ns/a"
        );
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_are_retried_after_five_minutes() {
        let q = q();
        q.add("ns/a", 0);
        let k = q.pop().await.unwrap();
        let start = Instant::now();
        q.unschedulable(&k);
        assert_eq!(
            pop_within(&q, Duration::from_secs(400)).await.unwrap(),
            "ns/a"
        );
        assert_eq!(Instant::now() - start, Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn pod_update_retries_an_unschedulable_pod() {
        let q = q();
        q.add("ns/a", 0);
        let k = q.pop().await.unwrap();
        q.unschedulable(&k);
        tokio::time::advance(Duration::from_secs(30)).await;
        q.add("ns/a", 0);
        assert_eq!(
            pop_within(&q, Duration::from_millis(1)).await.unwrap(),
            "ns/a"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_pod_is_never_popped() {
        let q = q();
        q.add("ns/a", 0);
        q.add("ns/b", 0);
        q.delete("ns/a");
        assert_eq!(q.pop().await.unwrap(), "ns/b");
        // A pod deleted while in flight is not requeued by its failure.
        q.delete("ns/b");
        q.unschedulable("ns/b");
        q.move_all();
        assert!(q.is_empty());
        assert_eq!(pop_within(&q, Duration::from_secs(1000)).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn done_forgets_the_backoff() {
        let q = q();
        q.add("ns/a", 0);
        let k = q.pop().await.unwrap();
        q.error(&k);
        assert_eq!(q.attempts("ns/a"), 1);
        let k = q.pop().await.unwrap();
        q.done(&k);
        assert!(q.is_empty());
        q.add("ns/a", 0);
        assert_eq!(q.attempts("ns/a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn pop_wakes_up_on_add_and_close() {
        let q = q();
        let q2 = q.clone();
        let h = tokio::spawn(async move { q2.pop().await });
        tokio::task::yield_now().await;
        q.add("ns/a", 0);
        assert_eq!(h.await.unwrap().unwrap(), "ns/a");
        let q3 = q.clone();
        let h = tokio::spawn(async move { q3.pop().await });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(h.await.unwrap(), None);
    }
}
