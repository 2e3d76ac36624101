//! Process metrics in the Prometheus text format: HTTP requests (counts and latency by
//! method, route template and status), job tasks run by this process (duration by kind
//! and outcome, re-runs), AWS API calls (by service, operation and outcome code),
//! throttled AWS calls (by service) and each S3 bucket's current concurrency limit.
//! Route templates and operation names — never raw paths, keys or ids — keep the label
//! set small and subject data out of metrics. Job, task-queue and queue-deadline figures
//! are cluster-wide and read from Postgres at scrape time (`api::job_gauges`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the HTTP latency buckets, in seconds.
const HTTP_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the task duration buckets, in seconds (a task may read a large object).
const TASK_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Cumulative counts per bucket bound.
    buckets: Vec<u64>,
}

impl Series {
    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        self.buckets.resize(bounds.len(), 0);
        self.count += 1;
        self.sum_seconds += seconds;
        for (bound, bucket) in bounds.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        for (bound, count) in bounds.iter().zip(self.buckets.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// How a task run ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskOutcome {
    Ok,
    /// Failed and will run again.
    Retry,
    /// Failed for good.
    Failed,
}

impl TaskOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::Failed => "failed",
        }
    }
}

/// Every process metric; one per process, shared by requests, workers and AWS clients.
#[derive(Debug)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, u16), Series>>,
    /// Grants the last reconciliation found to differ from the declaration; -1 = unknown.
    drifted_grants: AtomicI64,
    tasks: Mutex<BTreeMap<(String, TaskOutcome), Series>>,
    task_reruns: Mutex<BTreeMap<String, u64>>,
    aws_calls: Mutex<BTreeMap<(String, String, String), u64>>,
    aws_throttles: Mutex<BTreeMap<String, u64>>,
    /// The current concurrency limit of each S3 bucket this process sent requests to.
    s3_limits: Mutex<BTreeMap<String, u32>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http: Mutex::default(),
            drifted_grants: AtomicI64::new(-1),
            tasks: Mutex::default(),
            task_reruns: Mutex::default(),
            aws_calls: Mutex::default(),
            aws_throttles: Mutex::default(),
            s3_limits: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Records the outcome of a grant reconciliation.
    pub fn set_drifted_grants(&self, count: usize) {
        self.drifted_grants
            .store(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Counts one request. The method label is one of a fixed set (anything else is
    /// `other`), so random methods cannot grow the series without bound.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        lock(&self.http)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default()
            .observe(&HTTP_BUCKETS, elapsed.as_secs_f64());
    }

    /// A task of `kind` ran for `elapsed` and ended with `outcome`.
    pub fn observe_task(&self, kind: &str, outcome: TaskOutcome, elapsed: Duration) {
        lock(&self.tasks)
            .entry((kind.to_owned(), outcome))
            .or_default()
            .observe(&TASK_BUCKETS, elapsed.as_secs_f64());
    }

    /// A task of `kind` was claimed again (after a retryable failure or a dead worker).
    pub fn count_task_rerun(&self, kind: &str) {
        *lock(&self.task_reruns).entry(kind.to_owned()).or_default() += 1;
    }

    /// One AWS API call (one HTTP attempt) ended with `code` (`ok`, an AWS error code such
    /// as `ThrottlingException`, `http_503`, `timeout`, `dispatch_failure`).
    pub fn count_aws_call(&self, service: &str, operation: &str, code: &str) {
        *lock(&self.aws_calls)
            .entry((service.to_owned(), operation.to_owned(), code.to_owned()))
            .or_default() += 1;
    }

    /// One AWS call attempt of `service` was throttled (`SlowDown`, a 503 from S3,
    /// `ThrottlingException`, a 429, ...).
    pub fn count_throttle(&self, service: &str) {
        *lock(&self.aws_throttles)
            .entry(service.to_owned())
            .or_default() += 1;
    }

    /// The concurrency limit of S3 requests to `bucket` is now `limit`.
    pub fn set_s3_concurrency_limit(&self, bucket: &str, limit: u32) {
        lock(&self.s3_limits).insert(bucket.to_owned(), limit);
    }

    /// Renders every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let http = lock(&self.http);
        out.push_str("# HELP lethe_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE lethe_http_requests_total counter\n");
        for ((method, route, status), s) in http.iter() {
            let _ = writeln!(
                out,
                "lethe_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP lethe_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE lethe_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in http.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            s.render(
                &mut out,
                "lethe_http_request_duration_seconds",
                &labels,
                &HTTP_BUCKETS,
            );
        }
        drop(http);
        out.push_str("# HELP lethe_task_duration_seconds Job tasks run by this process, by kind and outcome.\n");
        out.push_str("# TYPE lethe_task_duration_seconds histogram\n");
        for ((kind, outcome), s) in lock(&self.tasks).iter() {
            let labels = format!("kind=\"{kind}\",outcome=\"{}\"", outcome.as_str());
            s.render(
                &mut out,
                "lethe_task_duration_seconds",
                &labels,
                &TASK_BUCKETS,
            );
        }
        out.push_str("# HELP lethe_task_reruns_total Tasks this process claimed again after a failed or abandoned attempt.\n");
        out.push_str("# TYPE lethe_task_reruns_total counter\n");
        for (kind, n) in lock(&self.task_reruns).iter() {
            let _ = writeln!(out, "lethe_task_reruns_total{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP lethe_aws_calls_total AWS API calls (HTTP attempts) by service, operation and outcome code.\n");
        out.push_str("# TYPE lethe_aws_calls_total counter\n");
        for ((service, operation, code), n) in lock(&self.aws_calls).iter() {
            let _ = writeln!(
                out,
                "lethe_aws_calls_total{{service=\"{service}\",operation=\"{operation}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP lethe_aws_throttles_total AWS call attempts answered with a throttling error (SlowDown, S3 503, ThrottlingException, 429), by service (retried while attempts remain).\n");
        out.push_str("# TYPE lethe_aws_throttles_total counter\n");
        for (service, n) in lock(&self.aws_throttles).iter() {
            let _ = writeln!(
                out,
                "lethe_aws_throttles_total{{service=\"{service}\"}} {n}"
            );
        }
        out.push_str("# HELP lethe_s3_concurrency_limit S3 requests this process lets be in flight to a bucket at once (halved on throttling, raised back by successes).\n");
        out.push_str("# TYPE lethe_s3_concurrency_limit gauge\n");
        for (bucket, limit) in lock(&self.s3_limits).iter() {
            // Bucket names hold no quote or backslash; escaped all the same.
            let bucket = bucket.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "lethe_s3_concurrency_limit{{bucket=\"{bucket}\"}} {limit}"
            );
        }
        let drifted = self.drifted_grants.load(Ordering::Relaxed);
        if drifted >= 0 {
            out.push_str("# HELP lethe_grant_drift_grants Lake Formation grants that differ from the declaration at the last reconciliation.\n");
            out.push_str("# TYPE lethe_grant_drift_grants gauge\n");
            let _ = writeln!(out, "lethe_grant_drift_grants {drifted}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_render_as_cumulative_histograms() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/v1/queue", 200, Duration::from_millis(3));
        metrics.observe("GET", "/v1/queue", 200, Duration::from_millis(300));
        let text = metrics.render();
        assert!(text.contains(
            "lethe_http_requests_total{method=\"GET\",route=\"/v1/queue\",status=\"200\"} 2"
        ));
        assert!(text.contains("route=\"/v1/queue\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("route=\"/v1/queue\",status=\"200\",le=\"0.5\"} 2"));
        assert!(text.contains("route=\"/v1/queue\",status=\"200\",le=\"+Inf\"} 2"));
        assert!(
            !text.contains("lethe_grant_drift_grants"),
            "unknown until a check ran"
        );
        metrics.set_drifted_grants(3);
        assert!(metrics.render().contains("lethe_grant_drift_grants 3"));
    }

    #[test]
    fn tasks_and_aws_calls_render_by_label() {
        let metrics = Metrics::default();
        metrics.observe_task("forget.object", TaskOutcome::Ok, Duration::from_millis(70));
        metrics.observe_task("forget.object", TaskOutcome::Retry, Duration::from_secs(20));
        metrics.count_task_rerun("forget.object");
        metrics.count_aws_call("s3", "GetObject", "ok");
        metrics.count_aws_call("s3", "GetObject", "ok");
        metrics.count_aws_call("glue", "GetTable", "EntityNotFoundException");
        metrics.count_throttle("s3");
        metrics.count_throttle("s3");
        metrics.count_throttle("glue");
        metrics.set_s3_concurrency_limit("lake", 64);
        metrics.set_s3_concurrency_limit("lake", 32);
        let text = metrics.render();
        assert!(text.contains("lethe_aws_throttles_total{service=\"s3\"} 2"));
        assert!(text.contains("lethe_aws_throttles_total{service=\"glue\"} 1"));
        assert!(text.contains("lethe_s3_concurrency_limit{bucket=\"lake\"} 32\n"));
        assert!(text.contains(
            "lethe_task_duration_seconds_bucket{kind=\"forget.object\",outcome=\"ok\",le=\"0.1\"} 1"
        ));
        assert!(text.contains(
            "lethe_task_duration_seconds_bucket{kind=\"forget.object\",outcome=\"retry\",le=\"15\"} 0"
        ));
        assert!(text.contains(
            "lethe_task_duration_seconds_count{kind=\"forget.object\",outcome=\"retry\"} 1"
        ));
        assert!(text.contains("lethe_task_reruns_total{kind=\"forget.object\"} 1"));
        assert!(text.contains(
            "lethe_aws_calls_total{service=\"s3\",operation=\"GetObject\",code=\"ok\"} 2"
        ));
        assert!(text.contains(
            "lethe_aws_calls_total{service=\"glue\",operation=\"GetTable\",code=\"EntityNotFoundException\"} 1"
        ));
    }

    #[test]
    fn unknown_http_methods_share_one_label() {
        let m = Metrics::default();
        for i in 0..1000 {
            m.observe(&format!("X{i}"), "unmatched", 405, Duration::from_millis(1));
        }
        m.observe("GET", "/v1/queue", 200, Duration::from_millis(1));
        assert_eq!(lock(&m.http).len(), 2);
        assert!(lock(&m.http).contains_key(&("other".to_owned(), "unmatched".to_owned(), 405)));
    }
}
