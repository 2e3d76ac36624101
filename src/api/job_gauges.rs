//! The cluster-wide figures `/metrics` adds to the process's own: jobs by status, tasks
//! by state and kind, the oldest runnable task's age, queue deadlines, and the work every
//! job did so far, read from Postgres at scrape time (every process reports the same
//! values) and written in the Prometheus text format.

use std::fmt::Write;

/// Prometheus gauges of jobs by status, tasks by state and kind, the age of the oldest
/// runnable task, queue items by deadline (overdue / within a day), and the work done by
/// every job so far (cluster-wide counters: every process reports the same values).
pub async fn job_gauges(db: &sqlx::PgPool) -> sqlx::Result<String> {
    use crate::db::{deletion_queue_item, job, task};
    use crate::domain::job::JobStatus;
    let mut out = String::new();
    let jobs = job::counts_by_status(db).await?;
    out.push_str("# HELP lethe_jobs Jobs by status.\n# TYPE lethe_jobs gauge\n");
    for &status in JobStatus::ALL {
        let n = jobs
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "lethe_jobs{{status=\"{status}\"}} {n}");
    }
    out.push_str(
        "# HELP lethe_tasks Tasks queued, running or failed, by kind.\n# TYPE lethe_tasks gauge\n",
    );
    for (kind, state, n) in task::counts_by_kind(db).await? {
        let _ = writeln!(out, "lethe_tasks{{kind=\"{kind}\",state=\"{state}\"}} {n}");
    }
    let age = task::oldest_runnable_age(db).await?;
    out.push_str("# HELP lethe_task_oldest_runnable_seconds Age of the oldest runnable queued task.\n# TYPE lethe_task_oldest_runnable_seconds gauge\n");
    let _ = writeln!(out, "lethe_task_oldest_runnable_seconds {age:.3}");
    let (overdue, soon) = deletion_queue_item::deadline_counts(db).await?;
    out.push_str("# HELP lethe_queue_items_deadline Queued items past their deadline or due within a day.\n# TYPE lethe_queue_items_deadline gauge\n");
    let _ = writeln!(
        out,
        "lethe_queue_items_deadline{{window=\"overdue\"}} {overdue}"
    );
    let _ = writeln!(
        out,
        "lethe_queue_items_deadline{{window=\"within_1d\"}} {soon}"
    );
    let unattended = deletion_queue_item::deadline_unattended(db).await?;
    out.push_str("# HELP lethe_queue_items_deadline_unattended Queued items overdue or due within a day that no data mapper enabled for automatic jobs covers: the scheduler will not erase them on its own, an operator must start a job.\n# TYPE lethe_queue_items_deadline_unattended gauge\n");
    let _ = writeln!(out, "lethe_queue_items_deadline_unattended {unattended}");
    render_totals(&job::lifetime_totals(db).await?, &mut out);
    Ok(out)
}

fn render_totals(totals: &crate::db::job::JobStats, out: &mut String) {
    let t = totals;
    // (metric, help, label, [(label value, total)]).
    type Family<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, i64)>);
    let families: [Family; 4] = [
        (
            "lethe_job_objects_total",
            "Objects by what jobs did with them.",
            "outcome",
            vec![
                ("scanned", t.objects_scanned),
                ("matched", t.objects_matched),
                ("failed", t.objects_failed),
                ("rewritten", t.objects_rewritten),
                ("unchanged", t.objects_unchanged),
                ("forget_failed", t.objects_forget_failed),
                ("verified", t.objects_verified),
                ("verify_failed", t.objects_verify_failed),
            ],
        ),
        (
            "lethe_job_bytes_total",
            "Bytes of match columns scanned by find, and bytes of new versions written by forget.",
            "kind",
            vec![("scanned", t.bytes_scanned), ("written", t.bytes_written)],
        ),
        (
            "lethe_job_rows_total",
            "Rows found matching and rows removed.",
            "kind",
            vec![("matched", t.rows_matched), ("removed", t.rows_removed)],
        ),
        (
            "lethe_job_versions_deleted_total",
            "Old object versions deleted by cleanup.",
            "kind",
            vec![("deleted", t.versions_deleted)],
        ),
    ];
    for (name, help, label, series) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, n) in &series {
            if series.len() == 1 {
                let _ = writeln!(out, "{name} {n}");
            } else {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
    }
}
