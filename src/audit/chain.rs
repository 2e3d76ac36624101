//! The audit chain. Each row's `hash` is SHA-256(`prev_hash` || encoding(row)), `prev_hash`
//! the hash of the row at `seq - 1` ([`GENESIS`], 32 zero bytes, before `seq` 1). The
//! encoding is the row's fields in a fixed order, each `0x00` when null, else `0x01`, the
//! length of its UTF-8 bytes (8 bytes, big-endian) and those bytes; the fields' text forms
//! are decimal integers, `created_at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, and
//! `details` as Postgres prints the jsonb (`details::text`). The trigger computes the same
//! bytes in SQL (migration `20261213100100_audit_chain.sql`); a test pins both to a vector.
//!
//! [`Walker`] checks a chain in `seq` order and stops at the first row that does not hold:
//! a gap in `seq`, a `prev_hash` that is not the previous row's hash, a hash that is not
//! its content's, or a head a signed checkpoint names differently.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row, and the hash of an empty chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// One audit row as the chain hashes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub seq: i64,
    pub audit_event_id: i64,
    pub created_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    /// `details` as Postgres prints the jsonb (`details::text`).
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

fn field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&(v.len() as u64).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }
}

/// The row's canonical encoding (everything but `prev_hash` and `hash`).
pub fn encode(row: &ChainRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + row.details.len());
    let created_at = row.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    for value in [
        Some(row.seq.to_string().as_str()),
        Some(row.audit_event_id.to_string().as_str()),
        Some(created_at.as_str()),
        Some(row.actor.as_str()),
        Some(row.action.as_str()),
        Some(row.target_type.as_str()),
        row.target_id.as_deref(),
        row.request_id.as_deref(),
        row.client_request_id.as_deref(),
        Some(row.details.as_str()),
    ] {
        field(&mut out, value);
    }
    out
}

/// SHA-256(`prev` || encoding(row)).
pub fn row_hash(prev: &[u8], row: &ChainRow) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(encode(row));
    h.finalize().into()
}

pub use crate::receipt::jws::hex;

/// A head a signed checkpoint states, to hold the chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub seq: i64,
    /// Lowercase hex.
    pub hash: String,
    pub rows: i64,
    /// Where the checkpoint came from (`file:line`), for messages.
    pub at: String,
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error(
        "seq {seq} (audit_event_id {id}): its hash does not match its content (the row was changed)"
    )]
    Content { seq: i64, id: i64 },
    #[error("seq {seq} (audit_event_id {id}): its prev_hash is not the hash of seq {} (a row before it was changed, removed or put in)", .seq - 1)]
    Link { seq: i64, id: i64 },
    #[error("seq {seq} (audit_event_id {id}) follows seq {after}: a row is missing")]
    Gap { seq: i64, id: i64, after: i64 },
    #[error(
        "{at}: the chain has hash {found} at seq {seq}, the checkpoint signed {signed} (a row at or before seq {seq} was rewritten)"
    )]
    Rewritten {
        at: String,
        seq: i64,
        found: String,
        signed: String,
    },
    #[error(
        "{at}: the checkpoint counted {signed} row(s) up to seq {seq}, the chain holds {found}"
    )]
    Count {
        at: String,
        seq: i64,
        signed: i64,
        found: i64,
    },
    #[error(
        "{at}: the chain ends at seq {last}, before the checkpoint's seq {seq} (rows it covers are gone)"
    )]
    Short { at: String, seq: i64, last: i64 },
}

/// An intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intact {
    pub rows: i64,
    /// 0 for an empty chain.
    pub head_seq: i64,
    /// Lowercase hex ([`GENESIS`] for an empty chain).
    pub head_hash: String,
    /// Checkpoints the chain matched.
    pub checkpoints: usize,
}

/// Checks a chain row by row, in `seq` order.
#[derive(Debug)]
pub struct Walker {
    claims: Vec<Claim>,
    last_seq: i64,
    last_hash: Vec<u8>,
    matched: usize,
}

impl Walker {
    /// A walk that also holds the chain to these checkpoints' heads.
    pub fn new(mut claims: Vec<Claim>) -> Self {
        claims.sort_by_key(|c| std::cmp::Reverse(c.seq));
        Self {
            claims,
            last_seq: 0,
            last_hash: GENESIS.to_vec(),
            matched: 0,
        }
    }

    /// Takes the next row; Err names the first break.
    pub fn push(&mut self, row: &ChainRow) -> Result<(), Broken> {
        self.check_claims()?;
        let (seq, id) = (row.seq, row.audit_event_id);
        if seq != self.last_seq + 1 {
            let after = self.last_seq;
            return Err(Broken::Gap { seq, id, after });
        }
        if row.prev_hash != self.last_hash {
            return Err(Broken::Link { seq, id });
        }
        if row_hash(&row.prev_hash, row).as_slice() != row.hash.as_slice() {
            return Err(Broken::Content { seq, id });
        }
        self.last_seq = seq;
        self.last_hash.clone_from(&row.hash);
        Ok(())
    }

    /// Checks the claims on the current head (the claims are kept highest seq last out).
    fn check_claims(&mut self) -> Result<(), Broken> {
        while let Some(claim) = self.claims.last() {
            if claim.seq > self.last_seq {
                return Ok(());
            }
            let found = hex(&self.last_hash);
            if claim.seq < self.last_seq || found != claim.hash {
                // A claim below the head was passed without matching: only possible for a
                // seq the chain skipped, which `push` reports first.
                return Err(Broken::Rewritten {
                    at: claim.at.clone(),
                    seq: claim.seq,
                    found,
                    signed: claim.hash.clone(),
                });
            }
            if claim.rows != self.last_seq {
                return Err(Broken::Count {
                    at: claim.at.clone(),
                    seq: claim.seq,
                    signed: claim.rows,
                    found: self.last_seq,
                });
            }
            self.claims.pop();
            self.matched += 1;
        }
        Ok(())
    }

    /// The end of the chain: every checkpoint must lie within it.
    pub fn finish(mut self) -> Result<Intact, Broken> {
        self.check_claims()?;
        if let Some(claim) = self.claims.pop() {
            return Err(Broken::Short {
                at: claim.at,
                seq: claim.seq,
                last: self.last_seq,
            });
        }
        Ok(Intact {
            rows: self.last_seq,
            head_seq: self.last_seq,
            head_hash: hex(&self.last_hash),
            checkpoints: self.matched,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row the migration's own check hashed: `26beeb63…` was computed by the trigger
    /// in Postgres and by an independent Python script from the README's specification.
    fn vector_row() -> ChainRow {
        ChainRow {
            seq: 1,
            audit_event_id: 1,
            created_at: "2026-12-07T12:02:48.464100Z".parse().unwrap(),
            actor: "a".into(),
            action: "x.y".into(),
            target_type: "t".into(),
            target_id: None,
            request_id: None,
            client_request_id: None,
            details: r#"{"b": 1, "aa": [1.50, "é"]}"#.into(),
            prev_hash: GENESIS.to_vec(),
            hash: vec![],
        }
    }

    fn chain(n: i64) -> Vec<ChainRow> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut row = ChainRow {
                    seq,
                    audit_event_id: seq + 10,
                    actor: format!("user-{seq}"),
                    prev_hash: prev.clone(),
                    ..vector_row()
                };
                row.hash = row_hash(&prev, &row).to_vec();
                prev = row.hash.clone();
                row
            })
            .collect()
    }

    fn walk(rows: &[ChainRow], claims: Vec<Claim>) -> Result<Intact, Broken> {
        let mut w = Walker::new(claims);
        for r in rows {
            w.push(r)?;
        }
        w.finish()
    }

    fn claim(rows: &[ChainRow], seq: i64) -> Claim {
        Claim {
            seq,
            hash: hex(&rows[seq as usize - 1].hash),
            rows: seq,
            at: format!("cp:{seq}"),
        }
    }

    #[test]
    fn the_encoding_matches_the_specification_vector() {
        let row = vector_row();
        let enc = encode(&row);
        // "1": 0x01, length 1 (8 bytes), the byte; a null is one 0x00.
        assert_eq!(&enc[..10], &[1, 0, 0, 0, 0, 0, 0, 0, 1, b'1']);
        assert_eq!(
            hex(&row_hash(&GENESIS, &row)),
            "26beeb632ca435eeffbc60b521e24e472dc9b8c5c9c1ccdfe3c148e76102494f"
        );
        // A null and an empty string differ.
        let empty = ChainRow {
            target_id: Some(String::new()),
            ..vector_row()
        };
        assert_ne!(encode(&empty), enc);
    }

    #[test]
    fn an_intact_chain_passes_with_its_checkpoints() {
        let rows = chain(5);
        let ok = walk(&rows, vec![claim(&rows, 2), claim(&rows, 5)]).unwrap();
        assert_eq!((ok.rows, ok.head_seq, ok.checkpoints), (5, 5, 2));
        assert_eq!(ok.head_hash, hex(&rows[4].hash));
        let empty = walk(&[], vec![]).unwrap();
        assert_eq!((empty.rows, empty.head_hash), (0, hex(&GENESIS)));
    }

    #[test]
    fn each_kind_of_break_names_its_row() {
        let rows = chain(5);
        let mut edited = rows.clone();
        edited[2].actor = "someone else".into();
        assert_eq!(
            walk(&edited, vec![]),
            Err(Broken::Content { seq: 3, id: 13 })
        );
        let mut gone = rows.clone();
        gone.remove(1);
        assert_eq!(
            walk(&gone, vec![]),
            Err(Broken::Gap {
                seq: 3,
                id: 13,
                after: 1
            })
        );
        let mut relinked = rows.clone();
        relinked[3].prev_hash = GENESIS.to_vec();
        assert_eq!(
            walk(&relinked, vec![]),
            Err(Broken::Link { seq: 4, id: 14 })
        );
    }

    #[test]
    fn a_rehashed_rewrite_passes_the_walk_but_not_a_checkpoint_that_covers_it() {
        let rows = chain(5);
        let signed = vec![claim(&rows, 4)];
        // Row 2 rewritten and every hash after it recomputed: the chain itself holds.
        let mut forged = rows.clone();
        forged[1].actor = "someone else".into();
        for i in 1..forged.len() {
            forged[i].prev_hash = forged[i - 1].hash.clone();
            forged[i].hash = row_hash(&forged[i].prev_hash, &forged[i]).to_vec();
        }
        assert!(walk(&forged, vec![]).is_ok());
        let err = walk(&forged, signed.clone()).unwrap_err();
        assert!(
            matches!(&err, Broken::Rewritten { seq: 4, at, .. } if at == "cp:4"),
            "{err}"
        );
        // A chain cut short of the checkpoint.
        assert!(matches!(
            walk(&rows[..3], signed.clone()),
            Err(Broken::Short {
                seq: 4,
                last: 3,
                ..
            })
        ));
        // A checkpoint that counted other rows than its seq.
        let mut miscounted = signed;
        miscounted[0].rows = 7;
        assert!(matches!(
            walk(&rows, miscounted),
            Err(Broken::Count {
                signed: 7,
                found: 4,
                ..
            })
        ));
    }
}
