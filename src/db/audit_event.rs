//! `audit_event`: append-only record of mutating calls. Never holds match ids. Every row
//! is chained (`seq`, `prev_hash`, `hash`) by a trigger as it is inserted, under a
//! transaction-level lock: insert audit rows as the last statement of a transaction, so
//! the lock lasts only until its commit. [`verify_chain`] walks the chain.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool, QueryBuilder};

use crate::audit::chain::{Broken, ChainRow, Claim, GENESIS, Intact, Walker};

/// A new audit event.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The `x-request-id` the client sent, recorded beside the server's own.
    pub client_request_id: Option<&'a str>,
    pub details: Value,
}

/// Who made a change, as the audit trail records it: a token's subject and the request's
/// ids, or `scheduler` (no request).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub subject: &'a str,
    pub request_id: Option<&'a str>,
    pub client_request_id: Option<&'a str>,
}

impl Actor<'static> {
    /// The scheduler, which starts jobs on its own (cron, deadlines).
    pub const SCHEDULER: Actor<'static> = Actor {
        subject: "scheduler",
        request_id: None,
        client_request_id: None,
    };
}

impl<'a> Actor<'a> {
    /// An event by this actor.
    pub fn event(
        &self,
        action: &'a str,
        target_type: &'a str,
        target_id: Option<&'a str>,
        details: Value,
    ) -> NewAuditEvent<'a> {
        NewAuditEvent {
            actor: self.subject,
            action,
            target_type,
            target_id,
            request_id: self.request_id,
            client_request_id: self.client_request_id,
            details,
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub audit_event_id: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// Filters for listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Keyset cursor: the id of the first event of the page.
    pub start_at: Option<i64>,
}

pub async fn insert_audit_event(
    db: impl PgExecutor<'_>,
    event: NewAuditEvent<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"insert into audit_event
               (actor, action, target_type, target_id, request_id, client_request_id, details)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
    )
    .bind(event.actor)
    .bind(event.action)
    .bind(event.target_type)
    .bind(event.target_id)
    .bind(event.request_id)
    .bind(event.client_request_id)
    .bind(event.details)
    .execute(db)
    .await?;
    Ok(())
}

/// Lists up to `limit` events, newest first.
pub async fn list_audit_events(
    db: impl PgExecutor<'_>,
    filter: &AuditFilter,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    let mut q = QueryBuilder::new(
        "select audit_event_id, actor, action, target_type, target_id, request_id, client_request_id, details, created_at \
         from audit_event where true",
    );
    if let Some(actor) = &filter.actor {
        q.push(" and actor = ").push_bind(actor);
    }
    if let Some(action) = &filter.action {
        q.push(" and action = ").push_bind(action);
    }
    if let Some(since) = filter.since {
        q.push(" and created_at >= ").push_bind(since);
    }
    if let Some(start) = filter.start_at {
        q.push(" and audit_event_id <= ").push_bind(start);
    }
    q.push(" order by audit_event_id desc limit ")
        .push_bind(limit);
    q.build_query_as().fetch_all(db).await
}

/// The chain's head: its last row's seq and hash ([`GENESIS`] and 0 for an empty chain),
/// that row's id, and the rows counted, all read in one statement (one snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub audit_event_id: Option<i64>,
    pub rows: i64,
}

pub async fn head(db: impl PgExecutor<'_>) -> sqlx::Result<Head> {
    let (seq, hash, audit_event_id, rows): (Option<i64>, Option<Vec<u8>>, Option<i64>, i64) =
        sqlx::query_as(
            r#"select h.seq, h.hash, h.audit_event_id, (select count(*) from audit_event)
               from (select 1) one
               left join (select seq, hash, audit_event_id from audit_event
                          order by seq desc limit 1) h on true"#,
        )
        .fetch_one(db)
        .await?;
    Ok(Head {
        seq: seq.unwrap_or(0),
        hash: hash.unwrap_or_else(|| GENESIS.to_vec()),
        audit_event_id,
        rows,
    })
}

type ChainTuple = (
    i64,
    i64,
    DateTime<Utc>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Vec<u8>,
    Vec<u8>,
);

/// Up to `limit` rows of the chain after `after_seq`, in seq order, as the chain hashes
/// them (`details` as Postgres prints it).
pub async fn chain_page(
    db: impl PgExecutor<'_>,
    after_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<ChainRow>> {
    let rows: Vec<ChainTuple> = sqlx::query_as(
        r#"select seq, audit_event_id, created_at, actor, action, target_type, target_id,
                  request_id, client_request_id, details::text, prev_hash, hash
           from audit_event where seq > $1 order by seq limit $2"#,
    )
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ChainRow {
            seq: r.0,
            audit_event_id: r.1,
            created_at: r.2,
            actor: r.3,
            action: r.4,
            target_type: r.5,
            target_id: r.6,
            request_id: r.7,
            client_request_id: r.8,
            details: r.9,
            prev_hash: r.10,
            hash: r.11,
        })
        .collect())
}

/// Tries to change the audit trail (changing no row): Err for a role that may not
/// (`lethe demo` shows the runtime role's refusal).
pub async fn probe_update(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("update audit_event set actor = actor where seq < 0")
        .execute(db)
        .await?;
    Ok(())
}

/// Rows read per page of [`verify_chain`].
const CHAIN_PAGE: i64 = 1000;

/// Walks the whole chain in seq order, recomputing every hash here (not in Postgres), and
/// holds it to the heads `claims` (from signed checkpoints) state. The outer error is the
/// database's; the inner one names the first row that does not hold.
pub async fn verify_chain(db: &PgPool, claims: Vec<Claim>) -> sqlx::Result<Result<Intact, Broken>> {
    let mut walker = Walker::new(claims);
    let mut after = 0;
    loop {
        let rows = chain_page(db, after, CHAIN_PAGE).await?;
        for row in &rows {
            if let Err(broken) = walker.push(row) {
                return Ok(Err(broken));
            }
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == CHAIN_PAGE => after = last.seq,
            _ => return Ok(walker.finish()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn event<'a>(actor: &'a str, action: &'a str) -> NewAuditEvent<'a> {
        NewAuditEvent {
            actor,
            action,
            target_type: "data_mapper",
            target_id: Some("people"),
            request_id: Some("req-1"),
            client_request_id: None,
            details: json!({"count": 1}),
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn events_list_newest_first_with_filters_and_cursor(pool: sqlx::PgPool) {
        for (actor, action) in [
            ("alice", "a.create"),
            ("bob", "a.create"),
            ("alice", "a.delete"),
        ] {
            insert_audit_event(&pool, event(actor, action))
                .await
                .unwrap();
        }
        let all = list_audit_events(&pool, &AuditFilter::default(), 10)
            .await
            .unwrap();
        let actions: Vec<_> = all
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("alice", "a.delete"),
                ("bob", "a.create"),
                ("alice", "a.create")
            ]
        );

        let alice = AuditFilter {
            actor: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(list_audit_events(&pool, &alice, 10).await.unwrap().len(), 2);
        let creates = AuditFilter {
            action: Some("a.create".into()),
            ..Default::default()
        };
        assert_eq!(
            list_audit_events(&pool, &creates, 10).await.unwrap().len(),
            2
        );
        let future = AuditFilter {
            since: Some(Utc::now() + chrono::Duration::hours(1)),
            ..Default::default()
        };
        assert!(
            list_audit_events(&pool, &future, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let page = AuditFilter {
            start_at: Some(all[1].audit_event_id),
            ..Default::default()
        };
        let rest = list_audit_events(&pool, &page, 10).await.unwrap();
        assert_eq!(
            rest.iter().map(|e| e.audit_event_id).collect::<Vec<_>>(),
            [all[1].audit_event_id, all[2].audit_event_id]
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn audit_rows_cannot_be_changed_or_removed(pool: sqlx::PgPool) {
        sqlx::query(
            "insert into audit_event (actor, action, target_type, target_id, details, request_id)
             values ('a', 'x.y', 't', null, '{}', null)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for sql in [
            "update audit_event set actor = 'someone else'",
            "delete from audit_event",
            "truncate audit_event",
        ] {
            let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        let count: i64 = sqlx::query_scalar("select count(*) from audit_event")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 1);
    }

    /// As a superuser can: the append-only trigger off, `sql` run, the trigger on again.
    pub(crate) async fn superuser_edit(pool: &sqlx::PgPool, sql: &str) {
        let mut tx = pool.begin().await.unwrap();
        for step in [
            "alter table audit_event disable trigger audit_event_no_update_or_delete",
            sql,
            "alter table audit_event enable trigger audit_event_no_update_or_delete",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(step.to_owned()))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn every_insert_is_chained_as_the_walk_recomputes_it(pool: sqlx::PgPool) {
        let empty = head(&pool).await.unwrap();
        assert_eq!(
            empty,
            Head {
                seq: 0,
                hash: GENESIS.to_vec(),
                audit_event_id: None,
                rows: 0
            }
        );
        insert_audit_event(&pool, event("alice", "a.create"))
            .await
            .unwrap();
        // Several rows in one statement, details with numbers and non-ASCII text, and an
        // inserter that sends its own chain fields (they are replaced).
        sqlx::query(
            r#"insert into audit_event (actor, action, target_type, details, seq, prev_hash, hash)
               values ('b', 'x.y', 't', '{"n": 1.50, "s": "é"}', 7, '\x00', '\x00'),
                      ('c', 'x.z', 't', '{"list": [3, 2, 1], "a": {"b": null}}', null, null, null)"#,
        )
        .execute(&pool)
        .await
        .unwrap();
        let head = head(&pool).await.unwrap();
        assert_eq!((head.seq, head.rows), (3, 3));
        let intact = verify_chain(&pool, vec![]).await.unwrap().unwrap();
        assert_eq!((intact.rows, intact.head_seq), (3, 3));
        assert_eq!(intact.head_hash, crate::audit::chain::hex(&head.hash));
        let first = chain_page(&pool, 0, 1).await.unwrap();
        assert_eq!(first[0].prev_hash, GENESIS.to_vec());
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_row_a_superuser_edits_is_named_by_the_walk(pool: sqlx::PgPool) {
        for actor in ["alice", "bob", "carol", "dave"] {
            insert_audit_event(&pool, event(actor, "a.create"))
                .await
                .unwrap();
        }
        let rows = chain_page(&pool, 0, 10).await.unwrap();
        superuser_edit(
            &pool,
            "update audit_event set details = '{\"count\": 2}' where seq = 3",
        )
        .await;
        assert_eq!(
            verify_chain(&pool, vec![]).await.unwrap(),
            Err(Broken::Content {
                seq: 3,
                id: rows[2].audit_event_id
            })
        );
        // A row removed: the next one names the gap.
        superuser_edit(&pool, "delete from audit_event where seq in (2, 3)").await;
        assert_eq!(
            verify_chain(&pool, vec![]).await.unwrap(),
            Err(Broken::Gap {
                seq: 4,
                id: rows[3].audit_event_id,
                after: 1
            })
        );
    }

    /// A temporary table named `audit_event` (any role may create one) does not feed the
    /// trigger a false head, and an inserter's `created_at` is the database's time.
    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_runtime_role_cannot_shadow_the_chains_head_or_choose_a_rows_time(
        pool: sqlx::PgPool,
    ) {
        insert_audit_event(&pool, event("alice", "a.create"))
            .await
            .unwrap();
        let schema: String = sqlx::query_scalar("select current_schema()::text")
            .fetch_one(&pool)
            .await
            .unwrap();
        let runtime = crate::db::runtime_pool(&pool).await;
        let mut conn = runtime.acquire().await.unwrap();
        for sql in [
            "create temp table audit_event (seq bigint, hash bytea)".to_owned(),
            "insert into pg_temp.audit_event values (1000, '\\x00')".to_owned(),
            format!(
                "insert into {schema}.audit_event (actor, action, target_type, details, created_at)
                 values ('mallory', 'x.y', 'x', '{{}}', 'infinity')"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        drop(conn);
        let (seq, finite): (i64, bool) = sqlx::query_as(
            "select seq, isfinite(created_at) from audit_event where actor = 'mallory'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((seq, finite), (2, true));
        let intact = verify_chain(&pool, vec![]).await.unwrap().unwrap();
        assert_eq!(intact.head_seq, 2);
        // Receipts and their keys are append-only for the owner too (a single-role set-up).
        for sql in [
            "insert into receipt_key (kid, jwk) values ('k', '{}')",
            "insert into receipt (seq, receipt_id, job_id, deletion_queue_item_id, match_hash,
                                  jws, kid, issued_at)
             values (1, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'h', 'j', 'k',
                     now())",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        for sql in [
            "delete from receipt",
            "update receipt_key set jwk = '{}'",
            "truncate receipt_key",
        ] {
            let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_runtime_role_cannot_alter_update_delete_or_truncate_the_audit_trail(
        pool: sqlx::PgPool,
    ) {
        let runtime = crate::db::runtime_pool(&pool).await;
        insert_audit_event(&runtime, event("alice", "a.create"))
            .await
            .unwrap();
        assert_eq!(
            list_audit_events(&runtime, &AuditFilter::default(), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        for sql in [
            "alter table audit_event disable trigger audit_event_no_update_or_delete",
            "alter table audit_event disable trigger audit_event_chain",
            "alter table audit_event drop column hash",
            "update audit_event set actor = 'someone else'",
            "delete from audit_event",
            "truncate audit_event",
            "update audit_checkpoint set seq = 0",
            "delete from receipt",
            "truncate receipt_key",
            "drop table audit_event",
        ] {
            let err = sqlx::query(sql).execute(&runtime).await.unwrap_err();
            let code = err
                .as_database_error()
                .and_then(|e| e.code())
                .unwrap_or_default();
            // 42501: insufficient privilege (not the owner, or not granted).
            assert_eq!(code, "42501", "{sql}: {err}");
        }
        let count: i64 = sqlx::query_scalar("select count(*) from audit_event")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 1);
        assert!(verify_chain(&pool, vec![]).await.unwrap().is_ok());
    }

    /// The rows written before the chain existed are chained by its migration, in the
    /// order they were written.
    #[sqlx::test(migrations = false)]
    async fn the_migration_chains_the_rows_written_before_it_in_order(pool: sqlx::PgPool) {
        const BEFORE_THE_CHAIN: i64 = 20261212003100;
        crate::db::MIGRATOR
            .run_to(BEFORE_THE_CHAIN, &pool)
            .await
            .unwrap();
        for actor in ["alice", "bob", "carol"] {
            sqlx::query(
                "insert into audit_event (actor, action, target_type, details)
                 values ($1, 'a.create', 't', '{\"k\": [1, 2.0]}')",
            )
            .bind(actor)
            .execute(&pool)
            .await
            .unwrap();
        }
        crate::db::MIGRATOR.run(&pool).await.unwrap();
        insert_audit_event(&pool, event("dave", "a.create"))
            .await
            .unwrap();
        let rows = chain_page(&pool, 0, 10).await.unwrap();
        let order: Vec<(i64, &str)> = rows.iter().map(|r| (r.seq, r.actor.as_str())).collect();
        assert_eq!(order, [(1, "alice"), (2, "bob"), (3, "carol"), (4, "dave")]);
        let intact = verify_chain(&pool, vec![]).await.unwrap().unwrap();
        assert_eq!(intact.rows, 4);
    }
}
