//! HTTP metrics in the Prometheus text format: request counts and latency histograms by
//! method, route template and status. Route templates (not raw paths) keep the label set
//! small and keep identifiers out of metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
}

/// Request metrics, shared by every request.
#[derive(Debug)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
    /// Grants the last reconciliation found to differ from the declaration; -1 = unknown.
    drifted_grants: AtomicI64,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            series: Mutex::default(),
            drifted_grants: AtomicI64::new(-1),
        }
    }
}

impl HttpMetrics {
    /// Records the outcome of a grant reconciliation.
    pub fn set_drifted_grants(&self, count: usize) {
        self.drifted_grants
            .store(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        for (bound, bucket) in BUCKETS.iter().zip(entry.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
    }

    /// Renders every series.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP lethe_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE lethe_http_requests_total counter\n");
        for ((method, route, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "lethe_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP lethe_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE lethe_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in series.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (bound, count) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "lethe_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "lethe_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "lethe_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "lethe_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
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
        let metrics = HttpMetrics::default();
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
}
