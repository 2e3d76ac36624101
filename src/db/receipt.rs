//! `receipt` and `receipt_key`: the deployment's chain of erasure receipts and the public
//! keys that signed them. Receipts are appended under one lock ([`lock_chain`]), so `seq`
//! and `prev_hash` never fork; nothing here updates or deletes one.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::receipt::Jwk;

/// The advisory lock key of the receipt chain ("lether" in ASCII).
const CHAIN_LOCK: i64 = 0x6c65_7468_6572;

/// A receipt to append.
#[derive(Debug, Clone)]
pub struct NewReceipt {
    pub seq: i64,
    pub prev_hash: Option<String>,
    pub receipt_id: Uuid,
    pub job_id: Uuid,
    pub deletion_queue_item_id: Uuid,
    pub match_hash: String,
    pub reference: Option<String>,
    pub jws: String,
    pub kid: String,
    pub issued_at: DateTime<Utc>,
}

/// Takes the chain's lock until the transaction ends: one issuer appends at a time.
pub async fn lock_chain(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(CHAIN_LOCK)
        .execute(tx)
        .await?;
    Ok(())
}

/// The last receipt of the chain: its `seq` and compact JWS.
pub async fn head(db: impl PgExecutor<'_>) -> sqlx::Result<Option<(i64, String)>> {
    sqlx::query_as("select seq, jws from receipt order by seq desc limit 1")
        .fetch_optional(db)
        .await
}

/// The queue items of a job that have their receipt.
pub async fn issued_items(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("select deletion_queue_item_id from receipt where job_id = $1")
        .bind(job_id)
        .fetch_all(db)
        .await
}

/// Appends receipts (their `seq` follow the head's; the constraints refuse a fork).
pub async fn insert_many(db: impl PgExecutor<'_>, receipts: &[NewReceipt]) -> sqlx::Result<()> {
    if receipts.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&NewReceipt) -> String| receipts.iter().map(f).collect::<Vec<_>>();
    let seqs: Vec<i64> = receipts.iter().map(|r| r.seq).collect();
    let prevs: Vec<Option<String>> = receipts.iter().map(|r| r.prev_hash.clone()).collect();
    let refs: Vec<Option<String>> = receipts.iter().map(|r| r.reference.clone()).collect();
    let ids: Vec<Uuid> = receipts.iter().map(|r| r.receipt_id).collect();
    let jobs: Vec<Uuid> = receipts.iter().map(|r| r.job_id).collect();
    let items: Vec<Uuid> = receipts.iter().map(|r| r.deletion_queue_item_id).collect();
    let issued: Vec<DateTime<Utc>> = receipts.iter().map(|r| r.issued_at).collect();
    // Each item is still queued when its receipt is issued: its creator is copied from it
    // (the item leaves the queue, the receipt stays, and a requester reads its own).
    sqlx::query(
        "insert into receipt (seq, prev_hash, receipt_id, job_id, deletion_queue_item_id,
                              match_hash, reference, jws, kid, issued_at, created_by)
         select u.*, q.created_by
         from unnest($1::bigint[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[],
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
              as u(seq, prev_hash, receipt_id, job_id, item, match_hash, reference, jws, kid,
                   issued_at)
         left join deletion_queue_item q on q.deletion_queue_item_id = u.item",
    )
    .bind(&seqs)
    .bind(&prevs)
    .bind(&ids)
    .bind(&jobs)
    .bind(&items)
    .bind(col(|r| r.match_hash.clone()))
    .bind(&refs)
    .bind(col(|r| r.jws.clone()))
    .bind(col(|r| r.kid.clone()))
    .bind(&issued)
    .execute(db)
    .await?;
    Ok(())
}

/// Which receipts to list.
#[derive(Debug, Clone)]
pub enum Filter {
    Job(Uuid),
    Reference(String),
    MatchHash(String),
}

/// Up to `limit` receipts matching `filter` after `after_seq`, in chain order: (seq, jws).
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &Filter,
    after_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    page_of(db, filter, None, after_seq, limit).await
}

/// [`page`], and with `created_by` only the receipts of the items that principal created.
pub async fn page_of(
    db: impl PgExecutor<'_>,
    filter: &Filter,
    created_by: Option<&str>,
    after_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    const BY_JOB: &str = "select seq, jws from receipt where job_id = $1 and seq > $2
                          and ($4::text is null or created_by = $4) order by seq limit $3";
    const BY_REFERENCE: &str = "select seq, jws from receipt where reference = $1 and seq > $2
                                and ($4::text is null or created_by = $4) order by seq limit $3";
    const BY_HASH: &str = "select seq, jws from receipt where match_hash = $1 and seq > $2
                           and ($4::text is null or created_by = $4) order by seq limit $3";
    let query = match filter {
        Filter::Job(id) => sqlx::query_as(BY_JOB).bind(*id),
        Filter::Reference(r) => sqlx::query_as(BY_REFERENCE).bind(r.clone()),
        Filter::MatchHash(h) => sqlx::query_as(BY_HASH).bind(h.clone()),
    };
    query
        .bind(after_seq)
        .bind(limit)
        .bind(created_by)
        .fetch_all(db)
        .await
}

/// Records a key that signs receipts (once).
pub async fn record_key(db: impl PgExecutor<'_>, jwk: &Jwk) -> sqlx::Result<()> {
    sqlx::query("insert into receipt_key (kid, jwk) values ($1, $2) on conflict (kid) do nothing")
        .bind(&jwk.kid)
        .bind(sqlx::types::Json(jwk))
        .execute(db)
        .await?;
    Ok(())
}

/// Every key that signed a receipt, oldest first.
pub async fn keys(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Jwk>> {
    let rows: Vec<sqlx::types::Json<Jwk>> =
        sqlx::query_scalar("select jwk from receipt_key order by created_at, kid")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|j| j.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(seq: i64, prev: Option<&str>, job_id: Uuid, item: Uuid) -> NewReceipt {
        NewReceipt {
            seq,
            prev_hash: prev.map(str::to_owned),
            receipt_id: Uuid::now_v7(),
            job_id,
            deletion_queue_item_id: item,
            match_hash: format!("h{seq}"),
            reference: Some("T-1".into()),
            jws: format!("jws{seq}"),
            kid: "k".into(),
            issued_at: Utc::now(),
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_chain_refuses_a_fork_a_gap_at_the_start_and_a_second_receipt_of_an_item(
        db: sqlx::PgPool,
    ) {
        let (job, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut tx = db.begin().await.unwrap();
        lock_chain(&mut tx).await.unwrap();
        assert_eq!(head(&mut *tx).await.unwrap(), None);
        insert_many(
            &mut *tx,
            &[receipt(1, None, job, a), receipt(2, Some("p1"), job, b)],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(head(&db).await.unwrap(), Some((2, "jws2".to_owned())));
        let mut issued = issued_items(&db, job).await.unwrap();
        issued.sort();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(issued, expected);
        for (bad, constraint) in [
            (
                receipt(3, Some("p1"), job, Uuid::now_v7()),
                "receipt_prev_hash_key",
            ),
            (receipt(3, Some("p2"), job, a), "receipt_job_item_key"),
            (receipt(2, Some("p9"), Uuid::now_v7(), a), "receipt_pkey"),
            (
                receipt(3, None, job, Uuid::now_v7()),
                "receipt_prev_only_first",
            ),
        ] {
            let err = insert_many(&db, &[bad]).await.unwrap_err();
            let db_err = err.as_database_error().unwrap();
            assert_eq!(db_err.constraint(), Some(constraint), "{err}");
        }
        let by_ref = page(&db, &Filter::Reference("T-1".into()), 1, 10)
            .await
            .unwrap();
        assert_eq!(by_ref, [(2, "jws2".to_owned())]);
        let by_hash = page(&db, &Filter::MatchHash("h1".into()), 0, 10)
            .await
            .unwrap();
        assert_eq!(by_hash, [(1, "jws1".to_owned())]);
        assert_eq!(
            page(&db, &Filter::Job(job), 0, 1).await.unwrap().len(),
            1,
            "a page holds at most its limit"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_receipt_keeps_its_items_creator_who_alone_of_requesters_reads_it(db: sqlx::PgPool) {
        use crate::db::deletion_queue_item::{delete_queue_items, insert_queue_items};
        use crate::domain::queue::{MatchId, NewQueueItem, Scalar};
        let item = |id: &str| NewQueueItem {
            match_id: MatchId::Simple(Scalar::Text(id.into())),
            data_mappers: vec![],
            deadline: Utc::now() + chrono::Duration::days(30),
            reference: Some("T-1".into()),
        };
        let queued = |who: &'static str, id: &'static str| {
            let db = db.clone();
            async move {
                insert_queue_items(&db, &[item(id)], who).await.unwrap()[0].deletion_queue_item_id
            }
        };
        let (mine, theirs) = (queued("req-1", "a").await, queued("req-2", "b").await);
        let job = Uuid::now_v7();
        let receipts = [
            receipt(1, None, job, mine),
            receipt(2, Some("p1"), job, theirs),
            // An item no longer queued when its receipt was issued: no creator.
            receipt(3, Some("p2"), job, Uuid::now_v7()),
        ];
        insert_many(&db, &receipts).await.unwrap();
        // The items leave the queue; their receipts still name who queued them.
        delete_queue_items(&db, &[mine, theirs]).await.unwrap();
        for (creator, expected) in [
            (None, vec![1, 2, 3]),
            (Some("req-1"), vec![1]),
            (Some("req-2"), vec![2]),
            (Some("req-3"), vec![]),
        ] {
            for filter in [Filter::Job(job), Filter::Reference("T-1".into())] {
                let seqs: Vec<i64> = page_of(&db, &filter, creator, 0, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(seq, _)| seq)
                    .collect();
                assert_eq!(seqs, expected, "{creator:?} {filter:?}");
            }
        }
        let hash = Filter::MatchHash("h1".into());
        let mine = page_of(&db, &hash, Some("req-1"), 0, 10).await.unwrap();
        assert_eq!(mine.len(), 1);
        let theirs = page_of(&db, &hash, Some("req-2"), 0, 10).await.unwrap();
        assert!(theirs.is_empty());
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_signing_key_is_recorded_once(db: sqlx::PgPool) {
        let key = crate::receipt::LocalKey::generate().unwrap();
        use crate::receipt::Signer;
        record_key(&db, key.jwk()).await.unwrap();
        record_key(&db, key.jwk()).await.unwrap();
        assert_eq!(keys(&db).await.unwrap(), [key.jwk().clone()]);
    }
}
