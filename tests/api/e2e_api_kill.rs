//! The API process SIGKILLed while queue additions are in flight (a deployment gone
//! wrong, the OOM killer): every addition either lands once, whole, or fails visibly to
//! its client, and a client that retries with its `Idempotency-Key` lands it exactly once
//! — whether the killed request had committed (its answer lost) or not.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::e2e_glue::{KillOnDrop, database_url};

/// Items per addition: large enough that requests are in flight when the process dies.
const ITEMS: i64 = 1_500;
/// Concurrent additions per round.
const CLIENTS: i64 = 12;

/// `lethe` over the test's database, without workers, quiet.
fn lethe(db_url: &str) -> Command {
    let mut cmd = crate::e2e_glue::lethe(db_url);
    cmd.env("LETHE_WORKERS", "0").env("LETHE_LOG", "error");
    cmd
}

/// A `lethe serve` on a fresh loopback port, ready.
async fn serve(db_url: &str) -> (KillOnDrop, String) {
    let mut command = lethe(db_url);
    command.stderr(Stdio::null());
    crate::e2e_glue::serve_ready(command).await
}

/// One client's addition: its key (none for a plain one), tag and body.
struct Addition {
    key: Option<String>,
    tag: String,
    body: Value,
}

fn addition(round: i64, n: i64, keyed: bool) -> Addition {
    let tag = format!("r{round}-c{n}");
    let base = 900_000_000 + (round * CLIENTS + n) * ITEMS;
    Addition {
        key: keyed.then(|| uuid::Uuid::new_v4().to_string()),
        body: json!({"matches": (0..ITEMS).map(|i| json!({"match_id": base + i, "reference": tag})).collect::<Vec<_>>()}),
        tag,
    }
}

/// Sends one addition; the status, or None when the connection failed.
async fn send(http: &reqwest::Client, base: &str, token: &str, a: &Addition) -> Option<u16> {
    let mut req = http
        .patch(format!("{base}/v1/queue/matches"))
        .bearer_auth(token)
        .json(&a.body);
    if let Some(key) = &a.key {
        req = req.header("idempotency-key", key);
    }
    req.send().await.ok().map(|r| r.status().as_u16())
}

async fn landed(db: &sqlx::PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "select reference, count(*) from deletion_queue_item group by reference",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn queue_additions_land_once_or_fail_visibly_when_the_api_process_is_killed(
    db: sqlx::PgPool,
) {
    let db_url = database_url(&db).await;
    let (mut server, mut base) = serve(&db_url).await;
    let token = crate::e2e_glue::token(&db_url, "app", "requester");
    let http = reqwest::Client::new();

    // How long one addition takes here: the clients start spread over three of them and
    // the process dies amid them, so some are answered, some in flight, some not sent.
    let probe = addition(99, 0, false);
    let since = Instant::now();
    assert_eq!(send(&http, &base, &token, &probe).await, Some(201));
    let one = since.elapsed();
    sqlx::query("delete from deletion_queue_item")
        .execute(&db)
        .await
        .unwrap();

    let (mut kills, mut interrupted, mut committed_unanswered) = (0, 0, 0);
    let mut all = Vec::new();
    for round in 0..3 {
        // Two in three additions carry a key; the others show a plain one is atomic.
        let batch: Vec<Addition> = (0..CLIENTS)
            .map(|n| addition(round, n, n % 3 != 2))
            .collect();
        let sends = batch.iter().enumerate().map(|(n, a)| {
            let (http, base, token) = (&http, &base, &token);
            async move {
                tokio::time::sleep(one * n as u32 / 4).await;
                send(http, base, token, a).await
            }
        });
        let killer = async {
            tokio::time::sleep(one * (5 + round as u32) / 4).await;
            drop(std::mem::replace(
                &mut server,
                KillOnDrop(Command::new("true").spawn().unwrap()),
            ));
        };
        let (statuses, ()) = tokio::join!(futures_util::future::join_all(sends), killer);
        kills += 1;
        let (fresh, fresh_base) = serve(&db_url).await;
        server = fresh;
        base = fresh_base;
        let now = landed(&db).await;
        for (a, status) in batch.iter().zip(&statuses) {
            let count = now.get(&a.tag).copied().unwrap_or(0);
            match status {
                Some(201) => assert_eq!(count, ITEMS, "{}: answered 201, so all landed", a.tag),
                Some(s) => panic!("{}: unexpected status {s}", a.tag),
                None => {
                    interrupted += 1;
                    // All or nothing, never a part.
                    assert!(
                        count == 0 || count == ITEMS,
                        "{}: {count} of {ITEMS} landed",
                        a.tag
                    );
                    if count == ITEMS {
                        committed_unanswered += 1;
                    }
                    if a.key.is_some() {
                        // The client retries under its key: it lands exactly once.
                        let again = send(&http, &base, &token, a).await;
                        let expected = if count == ITEMS { 200 } else { 201 };
                        assert_eq!(again, Some(expected), "{}", a.tag);
                    }
                }
            }
        }
        all.extend(batch.into_iter().zip(statuses));
    }
    let end = landed(&db).await;
    for (a, status) in &all {
        let count = end.get(&a.tag).copied().unwrap_or(0);
        if a.key.is_some() || status.is_some() {
            assert_eq!(count, ITEMS, "{} landed exactly once", a.tag);
        } else {
            assert!(count == 0 || count == ITEMS, "{}", a.tag);
        }
    }
    eprintln!(
        "one addition of {ITEMS} items: {one:?}; {kills} API processes killed; {interrupted} \
         of {} additions interrupted, {committed_unanswered} of them had committed (answer \
         lost)",
        all.len()
    );
    assert!(
        interrupted >= 1,
        "no request was in flight when the process died"
    );
    drop(server);
}
