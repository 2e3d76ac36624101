//! What a receipt says the lake holds now, checked against the lake (`lethe receipt verify
//! --check-lake`): every `changed[].version_after` exists and its bytes hash to its
//! `sha256_after`; every `deleted[]` version is gone. The reads are the caller's
//! ([`Lake`]: plain S3 GETs and HEADs by version id), so this stays pure and is tested
//! on an in-memory lake.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::payload::Payload;

/// One object version, by bucket, key and version id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Version {
            bucket,
            key,
            version_id,
        } = self;
        write!(f, "s3://{bucket}/{key} version {version_id}")
    }
}

/// What a receipt says of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Written by the job: it exists, with these bytes when the receipt names their hash.
    Present { sha256: Option<String> },
    /// Deleted by the job's cleanup.
    Gone,
}

/// One claim to check, with the receipt that makes it (`at`, `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub at: String,
    pub seq: i64,
    pub version: Version,
    pub expect: Expect,
}

/// The claims of these receipts (`at`, payload): each version once per receipt.
pub fn claims(receipts: &[(String, Payload)]) -> Vec<Claim> {
    let mut out = Vec::new();
    for (at, p) in receipts {
        let mut mine: BTreeMap<Version, Expect> = BTreeMap::new();
        for c in &p.changed {
            let Some(version_id) = c.version_after.clone() else {
                continue;
            };
            let key = c.key_after.clone().unwrap_or_else(|| c.key.clone());
            let version = Version {
                bucket: c.bucket.clone(),
                key,
                version_id,
            };
            let sha256 = c.sha256_after.clone();
            mine.insert(version, Expect::Present { sha256 });
        }
        for d in &p.deleted {
            let version = Version {
                bucket: d.bucket.clone(),
                key: d.key.clone(),
                version_id: d.version_id.clone(),
            };
            mine.insert(version, Expect::Gone);
        }
        out.extend(mine.into_iter().map(|(version, expect)| Claim {
            at: at.clone(),
            seq: p.seq,
            version,
            expect,
        }));
    }
    out
}

/// The payloads of receipts whose signatures were verified (`verify::verify`), with
/// where each was read; Err: why one cannot be read.
pub fn payloads(
    inputs: &[super::verify::Input],
    keys: &super::Jwks,
) -> Result<Vec<(String, Payload)>, String> {
    inputs
        .iter()
        .map(|i| {
            let bytes =
                super::jws::verify(&i.compact, keys).map_err(|e| format!("{}: {e}", i.at))?;
            let payload = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", i.at))?;
            Ok((i.at.clone(), payload))
        })
        .collect()
}

/// What a read of one version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// It exists; the lowercase hex SHA-256 of its bytes (None when only its existence
    /// was asked).
    Present(Option<String>),
    /// The store says there is no such version (404, `NoSuchVersion`, `NoSuchKey`).
    Missing,
    /// The read failed otherwise (denied, unreachable): neither confirmed nor refuted.
    Unreadable(String),
}

/// The lake, read plainly.
#[async_trait]
pub trait Lake: Send + Sync {
    /// Reads `version`: its bytes' SHA-256 when `hash`, else only whether it exists.
    async fn read(&self, version: &Version, hash: bool) -> Found;
}

/// A claim the lake does not bear out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disagreement {
    #[error("{at}: seq {seq}: {version} (version_after) is not in the lake")]
    Missing {
        at: String,
        seq: i64,
        version: Version,
    },
    #[error("{at}: seq {seq}: {version} has SHA-256 {read}, the receipt says {stated}")]
    Hash {
        at: String,
        seq: i64,
        version: Version,
        stated: String,
        read: String,
    },
    #[error("{at}: seq {seq}: {version} is listed as deleted but still exists")]
    NotGone {
        at: String,
        seq: i64,
        version: Version,
    },
    #[error("{at}: seq {seq}: {version} cannot be read: {why}")]
    Unreadable {
        at: String,
        seq: i64,
        version: Version,
        why: String,
    },
}

/// Checks every claim against the lake; returns those it does not bear out, in order.
pub async fn check(lake: &dyn Lake, claims: &[Claim]) -> Vec<Disagreement> {
    let mut out = Vec::new();
    for c in claims {
        let hash = matches!(&c.expect, Expect::Present { sha256: Some(_) });
        let found = lake.read(&c.version, hash).await;
        if let Some(d) = judge(c, found) {
            out.push(d);
        }
    }
    out
}

/// Whether what was `found` bears `claim` out (None) or not.
fn judge(claim: &Claim, found: Found) -> Option<Disagreement> {
    let (at, seq, version) = (claim.at.clone(), claim.seq, claim.version.clone());
    match (&claim.expect, found) {
        (_, Found::Unreadable(why)) => Some(Disagreement::Unreadable {
            at,
            seq,
            version,
            why,
        }),
        (Expect::Gone, Found::Missing) => None,
        (Expect::Gone, Found::Present(_)) => Some(Disagreement::NotGone { at, seq, version }),
        (Expect::Present { .. }, Found::Missing) => {
            Some(Disagreement::Missing { at, seq, version })
        }
        (
            Expect::Present {
                sha256: Some(stated),
            },
            Found::Present(Some(read)),
        ) if *stated != read => Some(Disagreement::Hash {
            at,
            seq,
            version,
            stated: stated.clone(),
            read,
        }),
        (Expect::Present { .. }, Found::Present(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::receipt::payload::{Changed, Deleted};

    /// A lake in memory: version id → bytes' hash.
    struct Memory(HashMap<String, String>);

    #[async_trait]
    impl Lake for Memory {
        async fn read(&self, version: &Version, hash: bool) -> Found {
            if version.version_id == "denied" {
                return Found::Unreadable("AccessDenied".into());
            }
            match self.0.get(&version.version_id) {
                Some(h) => Found::Present(hash.then(|| h.clone())),
                None => Found::Missing,
            }
        }
    }

    fn changed(key: &str, after: &str, sha: Option<&str>, key_after: Option<&str>) -> Changed {
        Changed {
            data_mapper_id: "m".into(),
            bucket: "b".into(),
            key: key.into(),
            key_after: key_after.map(str::to_owned),
            version_before: Some("v0".into()),
            version_after: Some(after.into()),
            sha256_before: None,
            sha256_after: sha.map(str::to_owned),
            rows: 1,
            rows_before: Some(2),
            rows_after: Some(1),
            outcome: "verified".into(),
        }
    }

    fn receipt(seq: i64, changed: Vec<Changed>, deleted: &[&str]) -> (String, Payload) {
        let payload = Payload {
            v: 1,
            receipt_id: uuid::Uuid::nil(),
            seq,
            prev: None,
            issued_at: chrono::Utc::now(),
            issuer: "t".into(),
            lethe_version: "0".into(),
            job_id: uuid::Uuid::nil(),
            item_id: uuid::Uuid::nil(),
            match_hash: "00".into(),
            reference: None,
            requested_at: chrono::Utc::now(),
            deadline: chrono::Utc::now(),
            status: "erased".into(),
            reason: None,
            searched: vec![],
            changed,
            verified: None,
            deleted: deleted
                .iter()
                .map(|v| Deleted {
                    bucket: "b".into(),
                    key: "t/a.json".into(),
                    version_id: (*v).into(),
                })
                .collect(),
            residue: vec![],
        };
        (format!("r.txt:{seq}"), payload)
    }

    #[tokio::test]
    async fn an_intact_lake_bears_every_claim_out() {
        let lake = Memory([("v1".into(), "aa".into()), ("v2".into(), "bb".into())].into());
        let receipts = [
            receipt(
                1,
                vec![changed("t/a.json", "v1", Some("aa"), None)],
                &["v0"],
            ),
            // An Iceberg rewrite: the new file is read at key_after; no hash stated.
            receipt(
                2,
                vec![changed("t/d.parquet", "v2", None, Some("t/d-new.parquet"))],
                &[],
            ),
        ];
        let claims = claims(&receipts);
        assert_eq!(claims.len(), 3);
        assert_eq!(claims[2].version.key, "t/d-new.parquet");
        assert_eq!(check(&lake, &claims).await, []);
    }

    #[tokio::test]
    async fn each_disagreement_names_its_receipt_and_version() {
        let lake = Memory([("v1".into(), "ff".into()), ("v0".into(), "00".into())].into());
        let receipts = [receipt(
            7,
            vec![
                changed("t/a.json", "v1", Some("aa"), None),
                changed("t/b.json", "gone", Some("cc"), None),
                changed("t/c.json", "denied", None, None),
            ],
            &["v0"],
        )];
        let said: Vec<String> = check(&lake, &claims(&receipts))
            .await
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            said,
            [
                "r.txt:7: seq 7: s3://b/t/a.json version v0 is listed as deleted but still exists",
                "r.txt:7: seq 7: s3://b/t/a.json version v1 has SHA-256 ff, the receipt says aa",
                "r.txt:7: seq 7: s3://b/t/b.json version gone (version_after) is not in the lake",
                "r.txt:7: seq 7: s3://b/t/c.json version denied cannot be read: AccessDenied",
            ]
        );
    }
}
