//! Log lines written inside a task carry the task's and the job's ids. A test binary of
//! its own: tracing caches each callsite's interest process-wide, so a subscriber set for
//! one test thread is unreliable while other tests hit the same spans concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lethe::db::task::insert as enqueue_for_job;
use lethe::jobs::tasks::{Task, TaskError, TaskHandler, Worker};
use sqlx::PgPool;

/// Logs one line from inside a task.
struct Chatty;

#[async_trait]
impl TaskHandler for Chatty {
    async fn run(&self, _task: &Task) -> Result<(), TaskError> {
        tracing::info!("working");
        Ok(())
    }
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn log_lines_inside_a_task_carry_its_id_kind_and_job(pool: PgPool) {
    let job_id = uuid::Uuid::now_v7();
    sqlx::query("insert into job (job_id, dry_run, requested_data_mappers, settings, trigger, created_by) values ($1, true, '{}', '{}', 'api', 't')")
        .bind(job_id)
        .execute(&pool)
        .await
        .unwrap();
    let task_id = enqueue_for_job(&pool, Some(job_id), "chatty", &serde_json::json!({}), 3)
        .await
        .unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut handlers: HashMap<String, Arc<dyn TaskHandler>> = HashMap::new();
    handlers.insert("chatty".into(), Arc::new(Chatty));
    let worker = Worker {
        db: pool.clone(),
        id: "w".into(),
        lease: Duration::from_secs(30),
        max_crashes: 3,
        backoff: Duration::ZERO,
        handlers: Arc::new(handlers),
        job_hook: None,
        metrics: Arc::default(),
    };
    worker.run_until_idle().await.unwrap();
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "working")
        .unwrap_or_else(|| panic!("no log line from the task in {out}"));
    assert_eq!(line["span"]["task.id"], task_id, "{line}");
    assert_eq!(line["span"]["task.kind"], "chatty", "{line}");
    assert_eq!(line["span"]["job.id"], job_id.to_string(), "{line}");
}
