//! `deletion_queue_item`: the subjects waiting to be erased. Keyset pagination on the
//! time-ordered UUIDv7 id keeps listing flat however long the queue grows.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, QueryBuilder};
use uuid::Uuid;

use crate::domain::match_id::MatchId;
use crate::domain::queue::NewQueueItem;

/// A stored queue item.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueItem {
    pub deletion_queue_item_id: Uuid,
    #[sqlx(try_from = "Value")]
    pub match_id: MatchId,
    pub match_type: String,
    pub data_mappers: Vec<String>,
    pub deadline: DateTime<Utc>,
    pub reference: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A match id read from the queue; one of an unknown shape fails the read (loudly:
/// never a subject silently left out).
pub fn stored_match_id(v: serde_json::Value) -> sqlx::Result<MatchId> {
    MatchId::try_from(v).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// `match_id` as the queue keeps it: written as `jsonb` and read back, as a job reads an
/// item (`jsonb` keeps a number's value, not its text: `1E2` comes back as `100`). The
/// keyed hash of a match id is computed over this form.
pub async fn as_stored(db: impl PgExecutor<'_>, match_id: &MatchId) -> sqlx::Result<MatchId> {
    let stored: Value = sqlx::query_scalar("select $1::jsonb")
        .bind(match_id.to_json())
        .fetch_one(db)
        .await?;
    stored_match_id(stored)
}

/// Filters for listing, oldest first.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Items that apply to this mapper: those naming it, and those naming none (= all).
    pub data_mapper: Option<String>,
    pub deadline_before: Option<DateTime<Utc>>,
    /// Keyset cursor: the id of the first item of the page.
    pub start_at: Option<Uuid>,
    /// Only the items this principal created.
    pub created_by: Option<String>,
}

/// Inserts a batch in one statement; returns the rows in input order.
pub async fn insert_queue_items(
    db: impl PgExecutor<'_>,
    items: &[NewQueueItem],
    actor: &str,
) -> sqlx::Result<Vec<QueueItem>> {
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let match_ids: Vec<Value> = items.iter().map(|i| i.match_id.to_json()).collect();
    let types: Vec<&str> = items
        .iter()
        .map(|i| i.match_id.match_type().as_str())
        .collect();
    // Arrays of arrays must be rectangular in Postgres, so each item's mapper list
    // travels as a JSON array and is turned back into text[] in SQL.
    let mappers: Vec<Value> = items
        .iter()
        .map(|i| {
            Value::from(
                i.data_mappers
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let deadlines: Vec<DateTime<Utc>> = items.iter().map(|i| i.deadline).collect();
    let references: Vec<Option<String>> = items.iter().map(|i| i.reference.clone()).collect();
    let mut rows: Vec<QueueItem> = sqlx::query_as(
        r#"insert into deletion_queue_item
               (deletion_queue_item_id, match_id, match_type, data_mappers, deadline, reference, created_by)
           select t.id, t.match_id, t.match_type,
                  array(select jsonb_array_elements_text(t.mappers)), t.deadline, t.reference, $7
           from unnest($1::uuid[], $2::jsonb[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::text[])
                as t(id, match_id, match_type, mappers, deadline, reference)
           returning deletion_queue_item_id, match_id, match_type, data_mappers, deadline,
                     reference, created_by, created_at"#,
    )
    .bind(&ids)
    .bind(&match_ids)
    .bind(&types)
    .bind(&mappers)
    .bind(&deadlines)
    .bind(&references)
    .bind(actor)
    .fetch_all(db)
    .await?;
    rows.sort_by_key(|r| r.deletion_queue_item_id);
    Ok(rows)
}

/// Lists up to `limit` items, oldest first.
pub async fn list_queue_items(
    db: impl PgExecutor<'_>,
    filter: &QueueFilter,
    limit: i64,
) -> sqlx::Result<Vec<QueueItem>> {
    let mut q = QueryBuilder::new(
        "select deletion_queue_item_id, match_id, match_type, data_mappers, deadline, reference, \
         created_by, created_at from deletion_queue_item where true",
    );
    if let Some(mapper) = &filter.data_mapper {
        q.push(" and (cardinality(data_mappers) = 0 or data_mappers @> array[")
            .push_bind(mapper)
            .push("]::text[])");
    }
    if let Some(before) = filter.deadline_before {
        q.push(" and deadline < ").push_bind(before);
    }
    if let Some(start) = filter.start_at {
        q.push(" and deletion_queue_item_id >= ").push_bind(start);
    }
    if let Some(creator) = &filter.created_by {
        q.push(" and created_by = ").push_bind(creator);
    }
    q.push(" order by deletion_queue_item_id limit ")
        .push_bind(limit);
    q.build_query_as().fetch_all(db).await
}

/// The given items still queued, oldest first, locked until the transaction ends (what
/// a delete audits is what it deletes); ids not in the queue are ignored.
pub async fn lock_queue_items(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<QueueItem>> {
    sqlx::query_as(
        r#"select deletion_queue_item_id, match_id, match_type, data_mappers, deadline, reference,
                  created_by, created_at
           from deletion_queue_item where deletion_queue_item_id = any($1)
           order by deletion_queue_item_id for update"#,
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

/// Deletes the given items; ids not in the queue are ignored. Returns how many went.
pub async fn delete_queue_items(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<u64> {
    let result =
        sqlx::query(r#"delete from deletion_queue_item where deletion_queue_item_id = any($1)"#)
            .bind(ids)
            .execute(db)
            .await?;
    Ok(result.rows_affected())
}

/// What an `Idempotency-Key` of a queue addition says.
#[derive(Debug, PartialEq, Eq)]
pub enum AddKey {
    /// The key is new: it is now this transaction's (a concurrent request with the same
    /// key waits for it to end); record the items with [`record_add_key`].
    Fresh,
    /// A request with this key was done before: the SHA-256 of what it asked and the
    /// items it created.
    Done {
        request_sha256: Vec<u8>,
        item_ids: Vec<Uuid>,
    },
}

/// Takes `key` for `principal` in this transaction, or finds the request that took it.
pub async fn claim_add_key(
    conn: &mut sqlx::PgConnection,
    principal: &str,
    key: &str,
    request_sha256: &[u8],
) -> sqlx::Result<AddKey> {
    let fresh: Option<bool> = sqlx::query_scalar(
        r#"insert into queue_add_key (principal, idempotency_key, request_sha256)
           values ($1, $2, $3) on conflict do nothing returning true"#,
    )
    .bind(principal)
    .bind(key)
    .bind(request_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    if fresh.is_some() {
        return Ok(AddKey::Fresh);
    }
    let (request_sha256, item_ids) = sqlx::query_as(
        r#"select request_sha256, item_ids from queue_add_key
           where principal = $1 and idempotency_key = $2"#,
    )
    .bind(principal)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(AddKey::Done {
        request_sha256,
        item_ids,
    })
}

/// Records the items a request under `key` created (same transaction as the claim).
pub async fn record_add_key(
    db: impl PgExecutor<'_>,
    principal: &str,
    key: &str,
    item_ids: &[Uuid],
) -> sqlx::Result<()> {
    sqlx::query(
        r#"update queue_add_key set item_ids = $3 where principal = $1 and idempotency_key = $2"#,
    )
    .bind(principal)
    .bind(key)
    .bind(item_ids)
    .execute(db)
    .await?;
    Ok(())
}

/// How long an `Idempotency-Key` is remembered.
pub const ADD_KEY_HOURS: i64 = 24;

/// Forgets the keys older than [`ADD_KEY_HOURS`]; returns how many.
pub async fn expire_add_keys(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let done = sqlx::query(
        r#"delete from queue_add_key where created_at < now() - make_interval(hours => $1::int)"#,
    )
    .bind(ADD_KEY_HOURS as i32)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Items queued, the oldest one's time, items overdue and due within a day (only those
/// `created_by` made, when given).
pub async fn summary(
    db: impl PgExecutor<'_>,
    created_by: Option<&str>,
) -> sqlx::Result<(i64, Option<DateTime<Utc>>, i64, i64)> {
    sqlx::query_as(
        "select count(*), min(created_at),
                count(*) filter (where deadline < now()),
                count(*) filter (where deadline >= now() and deadline < now() + interval '1 day')
         from deletion_queue_item where ($1::text is null or created_by = $1)",
    )
    .bind(created_by)
    .fetch_one(db)
    .await
}

/// Items past their deadline, and items due within a day.
pub async fn deadline_counts(db: impl PgExecutor<'_>) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "select count(*) filter (where deadline < now()),
                count(*) filter (where deadline >= now() and deadline < now() + interval '1 day')
         from deletion_queue_item",
    )
    .fetch_one(db)
    .await
}

/// Items overdue or due within a day that no mapper enabled for automatic jobs covers (an
/// item naming no mapper is covered by any such mapper).
pub async fn deadline_unattended(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from deletion_queue_item q
         where q.deadline < now() + interval '1 day'
           and not exists (select 1 from data_mapper m where m.automatic_jobs
                           and (cardinality(q.data_mappers) = 0
                                or m.data_mapper_id = any(q.data_mappers)))",
    )
    .fetch_one(db)
    .await
}

/// The id of the item at `offset` in id order (benchmarks page deep with it).
pub async fn id_at(db: impl PgExecutor<'_>, offset: i64) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "select deletion_queue_item_id from deletion_queue_item order by deletion_queue_item_id offset $1 limit 1",
    )
    .bind(offset)
    .fetch_one(db)
    .await
}

/// True when some queued item names this mapper explicitly.
pub async fn any_item_names_mapper(db: impl PgExecutor<'_>, mapper: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        r#"select exists (select 1 from deletion_queue_item where data_mappers @> array[$1]::text[])"#,
    )
    .bind(mapper)
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::data_mapper::DataMapperId;
    use serde_json::json;

    fn item(value: Value, mappers: &[&str], deadline_days: i64) -> NewQueueItem {
        NewQueueItem {
            match_id: MatchId::from_stored(&value).unwrap(),
            data_mappers: mappers
                .iter()
                .map(|m| DataMapperId::parse(m).unwrap())
                .collect(),
            deadline: Utc::now() + chrono::Duration::days(deadline_days),
            reference: Some("T-1".into()),
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_batch_round_trips_with_its_mapper_lists(pool: sqlx::PgPool) {
        let composite = json!([{"column": "first_name", "value": "Jane"}]);
        let rows = insert_queue_items(
            &pool,
            &[
                item(json!("jane"), &[], 30),
                item(json!(42), &["a", "b"], 30),
                item(composite.clone(), &["a"], 30),
            ],
            "alice",
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].match_id.to_json(), json!("jane"));
        assert!(rows[0].data_mappers.is_empty());
        assert_eq!(rows[1].data_mappers, ["a", "b"]);
        assert_eq!(rows[2].match_id.to_json(), composite);
        assert_eq!(rows[2].match_type, "composite");
        assert!(rows.iter().all(|r| r.created_by == "alice"));
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn list_filters_by_mapper_and_deadline_and_pages_by_id(pool: sqlx::PgPool) {
        let rows = insert_queue_items(
            &pool,
            &[
                item(json!("all"), &[], 30),
                item(json!("a"), &["a"], 1),
                item(json!("b"), &["b"], 30),
            ],
            "alice",
        )
        .await
        .unwrap();
        let for_a = QueueFilter {
            data_mapper: Some("a".into()),
            ..Default::default()
        };
        let got: Vec<_> = list_queue_items(&pool, &for_a, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.match_id.to_json())
            .collect();
        assert_eq!(got, [json!("all"), json!("a")]);
        let soon = QueueFilter {
            deadline_before: Some(Utc::now() + chrono::Duration::days(2)),
            ..Default::default()
        };
        let got: Vec<_> = list_queue_items(&pool, &soon, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.match_id.to_json())
            .collect();
        assert_eq!(got, [json!("a")]);
        let mine = QueueFilter {
            created_by: Some("bob".into()),
            ..Default::default()
        };
        assert!(list_queue_items(&pool, &mine, 10).await.unwrap().is_empty());
        let page = QueueFilter {
            start_at: Some(rows[1].deletion_queue_item_id),
            ..Default::default()
        };
        assert_eq!(
            list_queue_items(&pool, &page, 1).await.unwrap()[0]
                .match_id
                .to_json(),
            json!("a")
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn delete_removes_only_the_named_items_and_ignores_unknown_ids(pool: sqlx::PgPool) {
        let rows = insert_queue_items(
            &pool,
            &[item(json!("x"), &["a"], 30), item(json!("y"), &[], 30)],
            "alice",
        )
        .await
        .unwrap();
        assert!(any_item_names_mapper(&pool, "a").await.unwrap());
        let gone = delete_queue_items(&pool, &[rows[0].deletion_queue_item_id, Uuid::now_v7()])
            .await
            .unwrap();
        assert_eq!(gone, 1);
        assert!(!any_item_names_mapper(&pool, "a").await.unwrap());
        let left = list_queue_items(&pool, &QueueFilter::default(), 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].match_id.to_json(), json!("y"));
    }

    /// A stored id of a shape the queue never stores fails the read: the subject is never
    /// silently left out of a listing or a job.
    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_stored_id_of_an_unknown_shape_fails_the_read(pool: sqlx::PgPool) {
        let rows = insert_queue_items(&pool, &[item(json!("x"), &[], 30)], "alice")
            .await
            .unwrap();
        sqlx::query(
            "update deletion_queue_item set match_id = 'true' where deletion_queue_item_id = $1",
        )
        .bind(rows[0].deletion_queue_item_id)
        .execute(&pool)
        .await
        .unwrap();
        let error = list_queue_items(&pool, &QueueFilter::default(), 10)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("match_id"), "{error}");
    }
}
