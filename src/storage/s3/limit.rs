//! A per-bucket limit on the S3 requests this process has in flight, which backs off when
//! S3 throttles and recovers when it answers (additive increase, multiplicative decrease):
//! [`Aimd`] decides (pure, unit-tested), [`BucketLimiter`] makes requests wait for a permit
//! under the bucket's current limit, and [`Signal`] (an SDK interceptor added to each
//! request) tells the limiter how every attempt of the request ended, SDK retries included.
//!
//! Invariants: a limit stays within 1..=max; no permit is handed out while a bucket has
//! `limit` or more in flight (after a decrease, requests already in flight finish and no
//! new one starts until they are under the new limit); a throttle of an attempt sent
//! before the last decrease answers for load that decrease already shed, so it does not
//! halve the limit again. Each gauge of `lethe_s3_concurrency_limit` is the bucket's limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// The limit's arithmetic: halve on a throttle (not below 1), one more after a window of
/// successes (as many as the limit) up to the maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aimd {
    max: u32,
    limit: u32,
    /// Successes since the limit last changed.
    successes: u32,
    /// Decreases so far: an attempt carries the epoch it was sent in.
    epoch: u64,
}

impl Aimd {
    /// Starts at `max` (at least 1).
    pub fn new(max: u32) -> Self {
        let max = max.max(1);
        Self {
            max,
            limit: max,
            successes: 0,
            epoch: 0,
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The epoch an attempt sent now is sent in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// An attempt sent in epoch `sent_in` was throttled: the limit halves (not below 1),
    /// unless it already did since that attempt was sent. True when the limit changed.
    pub fn throttled(&mut self, sent_in: u64) -> bool {
        if sent_in < self.epoch {
            return false;
        }
        self.epoch += 1;
        self.successes = 0;
        let before = self.limit;
        self.limit = (self.limit / 2).max(1);
        self.limit != before
    }

    /// An attempt was answered without a throttle: after as many in a row as the limit
    /// (one window), the limit grows by one, up to the maximum. True when it changed.
    pub fn succeeded(&mut self) -> bool {
        if self.limit >= self.max {
            return false;
        }
        self.successes += 1;
        if self.successes < self.limit {
            return false;
        }
        self.successes = 0;
        self.limit += 1;
        true
    }
}

#[derive(Debug)]
struct State {
    aimd: Aimd,
    in_flight: u32,
}

/// The requests in flight to one bucket, held under its [`Aimd`] limit.
#[derive(Debug)]
pub struct BucketLimiter {
    bucket: String,
    state: Mutex<State>,
    /// Notified once per freed slot (a permit dropped, the limit raised).
    freed: Notify,
    metrics: Arc<Metrics>,
}

impl BucketLimiter {
    pub fn new(bucket: &str, max: u32, metrics: Arc<Metrics>) -> Self {
        let aimd = Aimd::new(max);
        metrics.set_s3_concurrency_limit(bucket, aimd.limit());
        Self {
            bucket: bucket.to_owned(),
            state: Mutex::new(State { aimd, in_flight: 0 }),
            freed: Notify::new(),
            metrics,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the bucket has fewer requests in flight than its limit, and takes a slot
    /// (given back when the permit is dropped; cancel-safe).
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between is not missed.
            freed.as_mut().enable();
            {
                let mut s = self.state();
                if s.in_flight < s.aimd.limit() {
                    s.in_flight += 1;
                    return Permit(self.clone());
                }
            }
            freed.await;
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.state().aimd.limit()
    }

    /// Requests holding a permit now.
    pub fn in_flight(&self) -> u32 {
        self.state().in_flight
    }

    fn epoch(&self) -> u64 {
        self.state().aimd.epoch()
    }

    /// An attempt sent in epoch `sent_in` was throttled.
    pub fn throttled(&self, sent_in: u64) {
        let mut s = self.state();
        if s.aimd.throttled(sent_in) {
            let limit = s.aimd.limit();
            drop(s);
            tracing::info!(bucket = %self.bucket, limit, "S3 throttles: concurrency limit lowered");
            self.metrics.set_s3_concurrency_limit(&self.bucket, limit);
        }
    }

    /// An attempt was answered without a throttle.
    pub fn succeeded(&self) {
        let mut s = self.state();
        if s.aimd.succeeded() {
            let limit = s.aimd.limit();
            drop(s);
            self.metrics.set_s3_concurrency_limit(&self.bucket, limit);
            self.freed.notify_one();
        }
    }
}

/// A slot of a bucket's limit, held while its request (retries included) runs.
#[derive(Debug)]
pub struct Permit(Arc<BucketLimiter>);

impl Permit {
    /// The interceptor that reports each attempt of a request sent under this permit.
    pub fn signal(&self) -> Signal {
        Signal {
            sent_in: AtomicU64::new(self.0.epoch()),
            limiter: self.0.clone(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.state().in_flight -= 1;
        self.0.freed.notify_one();
    }
}

/// One limiter per bucket, shared by every S3 store of the process (whichever role signs
/// the requests, the bucket is the same).
#[derive(Debug)]
pub struct BucketLimits {
    max: u32,
    metrics: Arc<Metrics>,
    buckets: Mutex<HashMap<String, Arc<BucketLimiter>>>,
}

impl BucketLimits {
    /// Limits starting (and recovering up to) `max` requests in flight per bucket.
    pub fn new(max: u32, metrics: Arc<Metrics>) -> Self {
        Self {
            max,
            metrics,
            buckets: Mutex::default(),
        }
    }

    /// The limiter of `bucket`.
    pub fn of(&self, bucket: &str) -> Arc<BucketLimiter> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .entry(bucket.to_owned())
            .or_insert_with(|| Arc::new(BucketLimiter::new(bucket, self.max, self.metrics.clone())))
            .clone()
    }

    /// Waits for a slot of `bucket`'s limit.
    pub async fn enter(&self, bucket: &str) -> Permit {
        self.of(bucket).acquire().await
    }
}

/// Tells a bucket's limiter how each attempt of one request ended: a throttle (`SlowDown`,
/// any 503, a 429) halves the limit, any other answer counts towards raising it; an
/// attempt that got no answer (a timeout, a refused connection) counts for neither.
#[derive(Debug)]
pub struct Signal {
    limiter: Arc<BucketLimiter>,
    /// The limiter's epoch when the current attempt was sent.
    sent_in: AtomicU64,
}

impl Intercept for Signal {
    fn name(&self) -> &'static str {
        "LetheBucketLimit"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.sent_in.store(self.limiter.epoch(), Ordering::Relaxed);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (code, status) = crate::aws::attempt_outcome(context);
        if code != "ok" && crate::aws::is_throttle("s3", &code, status) {
            self.limiter.throttled(self.sent_in.load(Ordering::Relaxed));
        } else if status.is_some() {
            self.limiter.succeeded();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_throttle_halves_the_limit_and_one_halving_answers_for_the_attempts_in_flight() {
        let mut aimd = Aimd::new(64);
        let sent = aimd.epoch();
        assert!(aimd.throttled(sent));
        assert_eq!(aimd.limit(), 32);
        // Attempts sent before that decrease, throttled too: the same congestion.
        assert!(!aimd.throttled(sent));
        assert!(!aimd.throttled(sent));
        assert_eq!(aimd.limit(), 32);
        // An attempt sent after it, throttled: halves again.
        assert!(aimd.throttled(aimd.epoch()));
        assert_eq!(aimd.limit(), 16);
    }

    #[test]
    fn the_limit_never_goes_below_one() {
        let mut aimd = Aimd::new(5);
        for expected in [2, 1, 1, 1] {
            aimd.throttled(aimd.epoch());
            assert_eq!(aimd.limit(), expected);
        }
        assert_eq!(Aimd::new(0).limit(), 1, "a maximum of 0 is taken as 1");
    }

    #[test]
    fn successes_raise_the_limit_by_one_per_window_back_to_the_maximum_and_no_further() {
        let mut aimd = Aimd::new(8);
        aimd.throttled(aimd.epoch());
        aimd.throttled(aimd.epoch());
        assert_eq!(aimd.limit(), 2);
        // 2 successes make 3, 3 more make 4, ... (a window is the limit's worth).
        let mut successes = 0;
        let mut steps = Vec::new();
        while aimd.limit() < 8 {
            successes += 1;
            if aimd.succeeded() {
                steps.push((successes, aimd.limit()));
            }
        }
        assert_eq!(steps, [(2, 3), (5, 4), (9, 5), (14, 6), (20, 7), (27, 8)]);
        for _ in 0..100 {
            assert!(!aimd.succeeded());
        }
        assert_eq!(aimd.limit(), 8);
        // A throttle midway starts the window again.
        aimd.throttled(aimd.epoch());
        for _ in 0..3 {
            aimd.succeeded();
        }
        aimd.throttled(aimd.epoch());
        assert_eq!(aimd.limit(), 2);
        assert!(!aimd.succeeded());
        assert!(aimd.succeeded());
        assert_eq!(aimd.limit(), 3);
    }

    #[tokio::test]
    async fn requests_wait_for_a_permit_and_never_exceed_the_current_limit() {
        let metrics = Arc::<Metrics>::default();
        let limits = BucketLimits::new(4, metrics.clone());
        let limiter = limits.of("lake");
        assert!(Arc::ptr_eq(&limiter, &limits.of("lake")), "one per bucket");
        let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let run = |n: usize| {
            let (limiter, peak) = (limiter.clone(), peak.clone());
            tokio::spawn(async move {
                for _ in 0..n {
                    let permit = limiter.acquire().await;
                    let now = limiter.in_flight();
                    peak.fetch_max(now, Ordering::SeqCst);
                    assert!(now <= limiter.limit(), "{now} in flight");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    drop(permit);
                }
            })
        };
        let tasks: Vec<_> = (0..16).map(|_| run(10)).collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            4,
            "the limit was used, never passed"
        );
        assert_eq!(limiter.in_flight(), 0);

        // Throttled to 2: with 2 held, a third waits until one is given back.
        limiter.throttled(0);
        assert_eq!(limiter.limit(), 2);
        assert!(
            metrics
                .render()
                .contains("lethe_s3_concurrency_limit{bucket=\"lake\"} 2\n")
        );
        let (a, _b) = (limiter.acquire().await, limiter.acquire().await);
        let third = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !third.is_finished(),
            "a third request waits at a limit of 2"
        );
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("a freed slot lets the waiting request go")
            .unwrap();
        assert_eq!(limiter.in_flight(), 2);

        // Raised back by successes: a waiting request goes as soon as the limit grows.
        let fourth = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!fourth.is_finished());
        limiter.succeeded();
        limiter.succeeded();
        assert_eq!(limiter.limit(), 3);
        let _d = tokio::time::timeout(Duration::from_secs(5), fourth)
            .await
            .expect("a raised limit lets the waiting request go")
            .unwrap();
        assert_eq!(limiter.in_flight(), 3);
    }
}
