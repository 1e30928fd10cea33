//! A work queue of keys, with client-go's workqueue semantics:
//!
//! - **De-duplication**: a key added many times before a worker takes it is handed out
//!   once (a controller reconciles the latest state, not each event).
//! - **One worker per key**: a key being processed is not handed to another worker; if it
//!   is added meanwhile it is marked dirty and queued again when the first worker is done.
//! - **Delays**: [`WorkQueue::add_after`] (periodic requeue) and
//!   [`WorkQueue::add_rate_limited`] (retry after a failure) with per-key exponential
//!   back-off, capped, combined with an overall token bucket — client-go's
//!   `DefaultControllerRateLimiter`: `max(5ms * 2^failures capped at 1000s, 10 qps / 100
//!   burst)`.
//!
//! Delayed keys are promoted by waiting workers themselves (no background task), so the
//! queue works under `tokio::time::pause()`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Rate-limiting settings of a [`WorkQueue`].
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Delay of a key's first rate-limited retry; doubles with each further failure.
    pub base_delay: Duration,
    /// Cap of the per-key delay.
    pub max_delay: Duration,
    /// Overall rate of rate-limited adds (token bucket refill per second).
    pub qps: f64,
    /// Token bucket size: this many rate-limited adds pass without overall delay.
    pub burst: u32,
}

impl Default for QueueConfig {
    /// client-go's `DefaultControllerRateLimiter`: 5ms..1000s per key, 10 qps, burst 100.
    fn default() -> Self {
        QueueConfig {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1000),
            qps: 10.0,
            burst: 100,
        }
    }
}

/// A de-duplicating, rate-limited queue of keys with at most one worker per key.
/// Cheap to clone: clones share the queue.
pub struct WorkQueue<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    config: QueueConfig,
}

struct State<K> {
    /// Keys ready for a worker, in order.
    queue: VecDeque<K>,
    /// Keys that need processing (queued, or re-added while processing).
    dirty: HashSet<K>,
    /// Keys a worker holds.
    processing: HashSet<K>,
    /// Delayed keys: when each is due and the sequence number of its live heap entry.
    waiting: HashMap<K, (Instant, u64)>,
    heap: BinaryHeap<Delayed<K>>,
    seq: u64,
    /// Rate-limited retries per key since its last `forget`.
    failures: HashMap<K, u32>,
    bucket: Bucket,
    shutting_down: bool,
}

/// A heap entry ordered so that the earliest due time is on top.
struct Delayed<K> {
    at: Instant,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Delayed<K> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<K> Eq for Delayed<K> {}
impl<K> PartialOrd for Delayed<K> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<K> Ord for Delayed<K> {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A token bucket (golang.org/x/time/rate `Reserve` semantics): each reservation takes a
/// token, possibly going into debt; the delay is the time to repay the debt.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn reserve(&mut self, now: Instant, qps: f64, burst: u32) -> Duration {
        if qps <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * qps).min(f64::from(burst));
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / qps)
        }
    }
}

impl<K: Clone + Eq + Hash> State<K> {
    fn add(&mut self, key: K) -> bool {
        if self.shutting_down || self.dirty.contains(&key) {
            return false;
        }
        self.dirty.insert(key.clone());
        if self.processing.contains(&key) {
            return false;
        }
        self.queue.push_back(key);
        true
    }

    /// Moves every due delayed key to the queue; returns the next due time, if any.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(top) = self.heap.peek() {
            if top.at > now {
                return Some(top.at);
            }
            let Some(d) = self.heap.pop() else { break };
            if self.waiting.get(&d.key).is_some_and(|&(_, s)| s == d.seq) {
                self.waiting.remove(&d.key);
                self.add(d.key);
            }
        }
        None
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// A queue with client-go's default rate limits.
    pub fn new() -> Self {
        WorkQueue::with_config(QueueConfig::default())
    }

    /// A queue with the given rate limits.
    pub fn with_config(config: QueueConfig) -> Self {
        let state = State {
            queue: VecDeque::new(),
            dirty: HashSet::new(),
            processing: HashSet::new(),
            waiting: HashMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            failures: HashMap::new(),
            bucket: Bucket {
                tokens: f64::from(config.burst),
                last: Instant::now(),
            },
            shutting_down: false,
        };
        WorkQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                notify: Notify::new(),
                config,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that breaks the invariants readers rely on, so poisoning is ignored.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` now (no-op if it is already queued; deferred if a worker holds it).
    pub fn add(&self, key: K) {
        if self.lock().add(key) {
            self.shared.notify.notify_waiters();
        }
    }

    /// Queues `key` after `delay`. If the key is already waiting, the earlier time wins.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut st = self.lock();
        if st.shutting_down {
            return;
        }
        if st.waiting.get(&key).is_some_and(|&(t, _)| t <= at) {
            return;
        }
        st.seq += 1;
        let seq = st.seq;
        st.waiting.insert(key.clone(), (at, seq));
        st.heap.push(Delayed { at, seq, key });
        drop(st);
        // Sleeping workers recompute their wake-up time.
        self.shared.notify.notify_waiters();
    }

    /// Queues `key` after its back-off: `base * 2^n` for its n-th retry since the last
    /// [`forget`](Self::forget), capped, and no sooner than the overall rate allows.
    /// Returns the delay chosen.
    pub fn add_rate_limited(&self, key: K) -> Duration {
        let c = &self.shared.config;
        let delay = {
            let mut st = self.lock();
            let n = st.failures.entry(key.clone()).or_insert(0);
            let exp = *n;
            *n = n.saturating_add(1);
            let per_key = 2u32
                .checked_pow(exp)
                .and_then(|m| c.base_delay.checked_mul(m))
                .map_or(c.max_delay, |d| d.min(c.max_delay));
            let overall = st.bucket.reserve(Instant::now(), c.qps, c.burst);
            per_key.max(overall)
        };
        self.add_after(key, delay);
        delay
    }

    /// Resets `key`'s back-off (call after it was processed successfully).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many rate-limited retries `key` has had since its last `forget`.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Number of keys ready for a worker (not counting delayed or in-process ones).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the queue: adds are ignored, delayed keys dropped; `get` hands out what is
    /// still queued, then returns None.
    pub fn shut_down(&self) {
        {
            let mut st = self.lock();
            st.shutting_down = true;
            st.waiting.clear();
            st.heap.clear();
        }
        self.shared.notify.notify_waiters();
    }

    /// True after [`shut_down`](Self::shut_down).
    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    /// Waits for the next key. The key stays held — no other worker gets it — until the
    /// returned [`Lease`] is dropped. None once the queue is shut down and drained.
    pub async fn get(&self) -> Option<Lease<K>> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Register before looking, so an add between the look and the wait wakes us.
            notified.as_mut().enable();
            let next_due = {
                let mut st = self.lock();
                let next_due = st.promote(Instant::now());
                if let Some(key) = st.queue.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    let more = !st.queue.is_empty();
                    drop(st);
                    if more {
                        self.shared.notify.notify_waiters();
                    }
                    return Some(Lease {
                        key,
                        queue: self.clone(),
                    });
                }
                if st.shutting_down {
                    return None;
                }
                next_due
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn done(&self, key: K) {
        let mut st = self.lock();
        st.processing.remove(&key);
        let requeued = st.dirty.contains(&key) && {
            st.queue.push_back(key);
            true
        };
        drop(st);
        if requeued {
            self.shared.notify.notify_waiters();
        }
    }
}

/// A key held by one worker. Dropping it marks the key done: if it was added again
/// meanwhile, it is queued again now.
pub struct Lease<K: Clone + Eq + Hash + Send + 'static> {
    key: K,
    queue: WorkQueue<K>,
}

impl<K: Clone + Eq + Hash + Send + 'static> Lease<K> {
    /// The key to process.
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> std::ops::Deref for Lease<K> {
    type Target = K;
    fn deref(&self) -> &K {
        self.key()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Drop for Lease<K> {
    fn drop(&mut self) {
        self.queue.done(self.key.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    const MS: Duration = Duration::from_millis(1);

    async fn get_now(q: &WorkQueue<&'static str>) -> Option<Lease<&'static str>> {
        // Under a paused clock, a zero timeout only succeeds if a key is ready now.
        timeout(Duration::ZERO, q.get()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_added_twice_is_handed_out_once() {
        let q = WorkQueue::new();
        q.add("ns/a");
        q.add("ns/b");
        q.add("ns/a");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        let b = q.get().await.unwrap();
        assert_eq!((*a, *b), ("ns/a", "ns/b"));
        assert!(get_now(&q).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_in_process_is_not_handed_to_a_second_worker() {
        // client-go: an item added while processing is kept dirty and re-queued on Done,
        // so two workers never reconcile the same key at once.
        let q = WorkQueue::new();
        q.add("k");
        let first = q.get().await.unwrap();
        q.add("k");
        q.add("k");
        assert!(get_now(&q).await.is_none(), "second worker got a held key");
        assert_eq!(q.len(), 0);
        drop(first);
        let again = get_now(&q).await.expect("re-queued after done");
        assert_eq!(*again, "k");
        drop(again);
        // Added twice while held, processed once more, then nothing.
        assert!(get_now(&q).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_wakes_when_a_key_is_added() {
        let q = WorkQueue::new();
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.get().await.map(|l| *l) });
        tokio::task::yield_now().await;
        q.add("x");
        assert_eq!(worker.await.unwrap(), Some("x"));
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_delays_and_the_earlier_time_wins() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("k", Duration::from_secs(10));
        q.add_after("k", Duration::from_secs(3));
        q.add_after("k", Duration::from_secs(7));
        let l = q.get().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        drop(l);
        // The later entries were superseded: nothing else comes.
        assert!(
            timeout(Duration::from_secs(60), q.get()).await.is_err(),
            "a superseded delayed entry fired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_while_a_worker_sleeps_for_a_later_key() {
        let q = WorkQueue::new();
        q.add_after("late", Duration::from_secs(100));
        let q2 = q.clone();
        let start = Instant::now();
        let worker = tokio::spawn(async move { q2.get().await.map(|l| (*l, start.elapsed())) });
        tokio::task::yield_now().await;
        q.add_after("soon", Duration::from_secs(1));
        assert_eq!(
            worker.await.unwrap(),
            Some(("soon", Duration::from_secs(1)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_back_off_doubles_is_capped_and_forget_resets() {
        let q = WorkQueue::with_config(QueueConfig {
            base_delay: 5 * MS,
            max_delay: 40 * MS,
            qps: 0.0,
            burst: 0,
        });
        // client-go ItemExponentialFailureRateLimiter: base * 2^failures, capped.
        let delays: Vec<_> = (0..6).map(|_| q.add_rate_limited("k")).collect();
        assert_eq!(
            delays,
            vec![5 * MS, 10 * MS, 20 * MS, 40 * MS, 40 * MS, 40 * MS]
        );
        assert_eq!(q.num_requeues(&"k"), 6);
        q.forget(&"k");
        assert_eq!(q.num_requeues(&"k"), 0);
        assert_eq!(q.add_rate_limited("k"), 5 * MS);
        // Per key: another key starts at the base delay.
        assert_eq!(q.add_rate_limited("other"), 5 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_key_arrives_after_its_delay() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_rate_limited("k");
        q.add_rate_limited("k");
        // The second retry (10ms) does not push back the first (5ms): earlier wins.
        let l = q.get().await.unwrap();
        assert_eq!(start.elapsed(), 5 * MS);
        assert_eq!(*l, "k");
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_bucket_limits_many_keys() {
        // client-go's BucketRateLimiter: after `burst` immediate tokens, 1/qps apart.
        let q = WorkQueue::with_config(QueueConfig {
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            qps: 10.0,
            burst: 2,
        });
        let d: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|k| q.add_rate_limited(k))
            .collect();
        assert_eq!(d, vec![Duration::ZERO, Duration::ZERO, 100 * MS, 200 * MS]);
    }

    #[tokio::test(start_paused = true)]
    async fn shut_down_drains_then_ends() {
        let q = WorkQueue::new();
        q.add("a");
        q.add_after("later", Duration::from_secs(1));
        let q2 = q.clone();
        q.shut_down();
        q.add("b");
        assert!(q.is_shutting_down());
        assert_eq!(q.get().await.map(|l| *l), Some("a"));
        assert!(q2.get().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_worker_ends_on_shut_down() {
        let q: WorkQueue<&'static str> = WorkQueue::new();
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.get().await.is_none() });
        tokio::task::yield_now().await;
        q.shut_down();
        assert!(worker.await.unwrap());
    }
}
