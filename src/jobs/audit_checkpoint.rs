//! Writing audit checkpoints: the chain's head signed with the receipt key, at the end of
//! every job (in the transaction that ends it, beside its receipts) and every hour (the
//! supervisor's tick, one process at a time). Reading the head takes no lock: a checkpoint
//! states the head its transaction saw, so it never waits on a transaction that is
//! writing an audit row.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::audit::Checkpoint;
use crate::db::audit_checkpoint::{self as db, NewCheckpoint};
use crate::db::{audit_event, receipt};
use crate::receipt::Issuer;

/// How often the supervisor writes one when no job did.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Signs the head the transaction sees and appends the checkpoint.
pub async fn write(tx: &mut PgConnection, issuer: &Issuer) -> sqlx::Result<Checkpoint> {
    let head = audit_event::head(&mut *tx).await?;
    let cp = Checkpoint::new(head.seq, &head.hash, head.rows, &issuer.name);
    let jws = cp
        .sign(issuer.signer.as_ref())
        .await
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    let jwk = issuer.signer.jwk();
    receipt::record_key(&mut *tx, jwk).await?;
    let new = NewCheckpoint {
        seq: head.seq,
        hash: &head.hash,
        row_count: head.rows,
        jws: &jws,
        kid: &jwk.kid,
        created_at: cp.at,
    };
    db::insert_checkpoint(&mut *tx, &new).await?;
    Ok(cp)
}

/// Writes a checkpoint when none was written for `every`; one process at a time decides.
pub async fn write_if_due(
    pool: &PgPool,
    issuer: &Issuer,
    every: Duration,
) -> sqlx::Result<Option<Checkpoint>> {
    let mut tx = pool.begin().await?;
    // Each early end rolls back at once: a dropped transaction's rollback waits for its
    // connection's next use, and its lock would keep the next tick (on another connection
    // of the pool) from deciding.
    if !db::try_lock_hourly(&mut tx).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::hours(1));
    let due = match db::latest_at(&mut *tx).await? {
        Some(at) => at + every <= chrono::Utc::now(),
        None => true,
    };
    if !due {
        tx.rollback().await?;
        return Ok(None);
    }
    let cp = write(&mut tx, issuer).await?;
    tx.commit().await?;
    Ok(Some(cp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Broken;
    use crate::audit::checkpoint::verify;
    use crate::db::audit_event::tests::superuser_edit;
    use crate::db::audit_event::{Actor, insert_audit_event, verify_chain};
    use crate::receipt::Jwks;

    async fn audit(pool: &PgPool, n: usize) {
        for _ in 0..n {
            let event = Actor::SCHEDULER.event("test.event", "test", None, serde_json::json!({}));
            insert_audit_event(pool, event).await.unwrap();
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_checkpoint_holds_the_chain_to_its_head_and_shows_a_rehashed_rewrite(pool: PgPool) {
        let issuer = Issuer::ephemeral("test").unwrap();
        let keys = Jwks {
            keys: vec![issuer.signer.jwk().clone()],
        };
        audit(&pool, 3).await;
        let mut tx = pool.begin().await.unwrap();
        let written = write(&mut tx, &issuer).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((written.seq, written.rows), (3, 3));
        let stored = db::page(&pool, None, 0, 10).await.unwrap();
        assert_eq!(stored.len(), 1);
        let cp = verify(&stored[0].1, &keys).unwrap();
        assert_eq!(cp, written);
        let claims = vec![cp.claim("checkpoints.txt:1")];
        // Rows appended after it leave it standing.
        audit(&pool, 2).await;
        let ok = verify_chain(&pool, claims.clone()).await.unwrap().unwrap();
        assert_eq!((ok.rows, ok.checkpoints), (5, 1));

        // A superuser rewrites row 2 and recomputes every hash after it: the chain alone
        // holds, the checkpoint does not.
        superuser_edit(
            &pool,
            "do $$ declare r audit_event; prev bytea; begin
                 update audit_event set actor = 'mallory' where seq = 2;
                 select hash into prev from audit_event where seq = 1;
                 for r in select * from audit_event where seq >= 2 order by seq loop
                     r.prev_hash := prev;
                     r.hash := sha256(prev || audit_event_encoding(r));
                     update audit_event set prev_hash = r.prev_hash, hash = r.hash
                         where seq = r.seq;
                     prev := r.hash;
                 end loop;
             end $$",
        )
        .await;
        assert!(verify_chain(&pool, vec![]).await.unwrap().is_ok());
        let err = verify_chain(&pool, claims).await.unwrap().unwrap_err();
        assert!(
            matches!(&err, Broken::Rewritten { seq: 3, at, .. } if at == "checkpoints.txt:1"),
            "{err}"
        );
        assert!(err.to_string().contains("rewritten"), "{err}");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_hourly_checkpoint_is_written_once_an_hour(pool: PgPool) {
        let issuer = Issuer::ephemeral("test").unwrap();
        let first = write_if_due(&pool, &issuer, EVERY).await.unwrap();
        // An empty chain: seq 0 and the genesis hash.
        assert_eq!(first.map(|c| (c.seq, c.hash)), Some((0, "0".repeat(64))));
        audit(&pool, 1).await;
        assert!(write_if_due(&pool, &issuer, EVERY).await.unwrap().is_none());
        let due = write_if_due(&pool, &issuer, Duration::ZERO).await.unwrap();
        assert_eq!(due.map(|c| c.seq), Some(1));
        assert_eq!(db::page(&pool, None, 0, 10).await.unwrap().len(), 2);
        let keys: Vec<String> = sqlx::query_scalar("select kid from receipt_key")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(keys, [issuer.signer.jwk().kid.clone()]);
    }
}
