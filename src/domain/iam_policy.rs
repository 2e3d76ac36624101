//! The least-privilege IAM documents a data mapper's jobs need: read, rewrite, list and
//! delete versions of objects under the table's prefix, read the Glue table and its
//! partitions, and use the KMS keys S3 encrypts them with (only through S3).

use serde_json::{Value, json};

/// S3 object actions a job performs under the table's prefix.
const OBJECT_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:GetObjectRetention",
    "s3:GetObjectLegalHold",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];
/// S3 bucket actions, limited to the prefix by condition.
const BUCKET_ACTIONS: &[&str] = &["s3:ListBucket", "s3:ListBucketVersions"];
/// S3 bucket configuration cleanup reads to name what keeps or copies a version: when a
/// lifecycle rule expires it, where a replication rule copies it.
const BUCKET_CONFIGURATION_ACTIONS: &[&str] = &[
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
];

/// What the documents are about.
#[derive(Debug, Clone)]
pub struct PolicyTarget<'a> {
    pub bucket: &'a str,
    /// Key prefix of the table (may be empty: the whole bucket).
    pub prefix: &'a str,
    /// Glue database and table, when the mapper is Glue-backed.
    pub glue_table: Option<(&'a str, &'a str)>,
    pub role_arn: Option<&'a str>,
    /// The region and account of the Glue catalog (Lethe's), named in its ARNs when known
    /// (`*` otherwise).
    pub region: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl PolicyTarget<'_> {
    /// The table's prefix as a folder (`people` → `people/`: never `people-archive/`),
    /// written for IAM: `*`, `?` and `$` in a key are literals (`${*}`, `${?}`, `${$}`),
    /// not wildcards.
    fn folder(&self) -> String {
        let folder = super::prefix::dir_prefix(self.prefix);
        let mut out = String::with_capacity(folder.len());
        for c in folder.chars() {
            match c {
                '*' | '?' | '$' => {
                    out.push_str("${");
                    out.push(c);
                    out.push('}');
                }
                c => out.push(c),
            }
        }
        out
    }
}

/// The identity policy of whoever makes the mapper's S3 calls: Lethe's role, or the
/// mapper's `role_arn` (then Glue is still read as Lethe: see [`lethe_policy`]).
pub fn identity_policy(target: &PolicyTarget<'_>) -> Value {
    let mut statements = s3_statements(target, None);
    if target.role_arn.is_none() {
        statements.extend(glue_statement(target));
    }
    // S3 asks KMS with the object's ARN as encryption context (the bucket's, with an S3
    // Bucket Key): the keys are usable through S3 for the table's objects only.
    let bucket_arn = format!("arn:aws:s3:::{}", target.bucket);
    statements.push(json!({
        "Sid": "UseKmsKeysThroughS3",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {"StringLike": {
            "kms:ViaService": "s3.*.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": [
                format!("{bucket_arn}/{}*", target.folder()),
                bucket_arn,
            ],
        }},
    }));
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn glue_statement(target: &PolicyTarget<'_>) -> Option<Value> {
    let (database, table) = target.glue_table?;
    let glue = format!(
        "arn:aws:glue:{}:{}",
        target.region.unwrap_or("*"),
        target.account.unwrap_or("*")
    );
    Some(json!({
        "Sid": "ReadGlueTable",
        "Effect": "Allow",
        "Action": ["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"],
        "Resource": [
            format!("{glue}:catalog"),
            format!("{glue}:database/{database}"),
            format!("{glue}:table/{database}/{table}"),
        ],
    }))
}

/// With a `role_arn`: what Lethe's own principal needs (assume the role, read the Glue
/// table); None without one.
pub fn lethe_policy(target: &PolicyTarget<'_>) -> Option<Value> {
    let role = target.role_arn?;
    let mut statements = vec![json!({
        "Sid": "AssumeMapperRole",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": role,
    })];
    statements.extend(glue_statement(target));
    Some(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The trust policy `role_arn` needs so that `lethe` (Lethe's principal) may assume it:
/// with the external id Lethe passes when one is configured, only with a source identity
/// (the person a session acts for, which stays with the session) and only with Lethe's
/// own session tags (`lethe:job`, `lethe:mapper`).
pub fn trust_policy(lethe: &str, external_id: Option<&str>) -> Value {
    let mut condition = json!({"Null": {"sts:SourceIdentity": "false"}});
    if let Some(id) = external_id {
        condition["StringEquals"] = json!({"sts:ExternalId": id});
    }
    let assume = json!({
        "Sid": "LetheAssumesThisRole",
        "Effect": "Allow",
        "Principal": {"AWS": lethe},
        "Action": "sts:AssumeRole",
        "Condition": condition,
    });
    let identity = json!({
        "Sid": "LetheNamesWhoItActsFor",
        "Effect": "Allow",
        "Principal": {"AWS": lethe},
        "Action": "sts:SetSourceIdentity",
    });
    let tags = json!({
        "Sid": "LetheTagsItsSessions",
        "Effect": "Allow",
        "Principal": {"AWS": lethe},
        "Action": "sts:TagSession",
        "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["lethe:job", "lethe:mapper"]}},
    });
    json!({"Version": "2012-10-17", "Statement": [assume, identity, tags]})
}

/// The bucket policy that lets `role_arn` do the same on the bucket, for cross-account
/// buckets; None when the mapper has no `role_arn`.
pub fn bucket_policy(target: &PolicyTarget<'_>) -> Option<Value> {
    let role = target.role_arn?;
    Some(json!({
        "Version": "2012-10-17",
        "Statement": s3_statements(target, Some(role)),
    }))
}

fn s3_statements(target: &PolicyTarget<'_>, principal: Option<&str>) -> Vec<Value> {
    let bucket_arn = format!("arn:aws:s3:::{}", target.bucket);
    let mut list = json!({
        "Sid": "ListTableVersions",
        "Effect": "Allow",
        "Action": BUCKET_ACTIONS,
        "Resource": bucket_arn,
    });
    let folder = target.folder();
    if !folder.is_empty() {
        list["Condition"] = json!({"StringLike": {"s3:prefix": [format!("{folder}*")]}});
    }
    let mut objects = json!({
        "Sid": "RewriteTableObjects",
        "Effect": "Allow",
        "Action": OBJECT_ACTIONS,
        "Resource": format!("{bucket_arn}/{folder}*"),
    });
    let mut configuration = json!({
        "Sid": "ReadRetentionAndReplication",
        "Effect": "Allow",
        "Action": BUCKET_CONFIGURATION_ACTIONS,
        "Resource": bucket_arn,
    });
    if let Some(role) = principal {
        list["Principal"] = json!({"AWS": role});
        objects["Principal"] = json!({"AWS": role});
        configuration["Principal"] = json!({"AWS": role});
    }
    vec![list, objects, configuration]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> PolicyTarget<'static> {
        PolicyTarget {
            bucket: "lake",
            prefix: "people/",
            glue_table: Some(("db", "people")),
            role_arn: Some("arn:aws:iam::123456789012:role/Lethe"),
            region: Some("eu-west-1"),
            account: Some("111122223333"),
        }
    }

    #[test]
    fn with_a_role_the_role_reads_s3_and_lethe_assumes_it_and_reads_glue() {
        let role = identity_policy(&target());
        let sids: Vec<&str> = role["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(
            sids,
            [
                "ListTableVersions",
                "RewriteTableObjects",
                "ReadRetentionAndReplication",
                "UseKmsKeysThroughS3"
            ]
        );
        let lethe = lethe_policy(&target()).unwrap();
        assert_eq!(lethe["Statement"][0]["Action"], "sts:AssumeRole");
        assert_eq!(
            lethe["Statement"][0]["Resource"],
            "arn:aws:iam::123456789012:role/Lethe"
        );
        assert_eq!(lethe["Statement"][1]["Sid"], "ReadGlueTable");
        let trust = trust_policy("arn:aws:iam::1:role/lethe", Some("x-1"));
        assert_eq!(
            trust["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::1:role/lethe"
        );
        assert_eq!(
            trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "x-1"
        );
        let no_id = trust_policy("p", None);
        assert!(
            no_id["Statement"][0]["Condition"]
                .get("StringEquals")
                .is_none()
        );
        assert_eq!(
            no_id["Statement"][0]["Condition"]["Null"]["sts:SourceIdentity"], "false",
            "a session must say whom it acts for"
        );
        assert_eq!(trust["Statement"][1]["Action"], "sts:SetSourceIdentity");
        assert_eq!(trust["Statement"][2]["Action"], "sts:TagSession");
        assert!(
            lethe_policy(&PolicyTarget {
                role_arn: None,
                ..target()
            })
            .is_none()
        );
    }

    #[test]
    fn identity_policy_is_scoped_to_the_prefix_and_table() {
        let policy = identity_policy(&PolicyTarget {
            role_arn: None,
            ..target()
        });
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements[0]["Resource"], "arn:aws:s3:::lake");
        assert_eq!(
            statements[0]["Condition"]["StringLike"]["s3:prefix"][0],
            "people/*"
        );
        assert_eq!(statements[1]["Resource"], "arn:aws:s3:::lake/people/*");
        assert!(
            statements[1]["Action"]
                .as_array()
                .unwrap()
                .contains(&json!("s3:DeleteObjectVersion"))
        );
        assert_eq!(statements[2]["Resource"], "arn:aws:s3:::lake");
        assert!(statements[2].get("Condition").is_none(), "bucket settings");
        assert_eq!(
            statements[3]["Resource"][2],
            "arn:aws:glue:eu-west-1:111122223333:table/db/people"
        );
        assert!(statements.iter().all(|s| s.get("Principal").is_none()));
    }

    #[test]
    fn bucket_policy_names_the_role_and_exists_only_with_one() {
        let policy = bucket_policy(&target()).unwrap();
        for statement in policy["Statement"].as_array().unwrap() {
            assert_eq!(
                statement["Principal"]["AWS"],
                "arn:aws:iam::123456789012:role/Lethe"
            );
        }
        let no_role = PolicyTarget {
            role_arn: None,
            ..target()
        };
        assert!(bucket_policy(&no_role).is_none());
    }

    #[test]
    fn the_location_is_a_folder_and_its_wildcard_characters_are_literals() {
        // `s3://lake/people` (no slash) must not reach `people-archive/`.
        let policy = identity_policy(&PolicyTarget {
            prefix: "people",
            role_arn: None,
            ..target()
        });
        let s = &policy["Statement"];
        assert_eq!(s[0]["Condition"]["StringLike"]["s3:prefix"][0], "people/*");
        assert_eq!(s[1]["Resource"], "arn:aws:s3:::lake/people/*");
        let kms = s.as_array().unwrap().last().unwrap();
        assert_eq!(
            kms["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"],
            json!(["arn:aws:s3:::lake/people/*", "arn:aws:s3:::lake"])
        );
        let odd = identity_policy(&PolicyTarget {
            prefix: "a*b?/c$d",
            role_arn: None,
            ..target()
        });
        assert_eq!(
            odd["Statement"][1]["Resource"],
            "arn:aws:s3:::lake/a${*}b${?}/c${$}d/*"
        );
        // Unknown region and account: any (said so by the `*`).
        let anywhere = identity_policy(&PolicyTarget {
            role_arn: None,
            region: None,
            account: None,
            ..target()
        });
        let glue = anywhere["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "ReadGlueTable")
            .unwrap()
            .clone();
        assert_eq!(glue["Resource"][0], "arn:aws:glue:*:*:catalog");
    }

    #[test]
    fn a_table_at_the_bucket_root_lists_without_a_prefix_condition() {
        let root = PolicyTarget {
            prefix: "",
            glue_table: None,
            role_arn: None,
            ..target()
        };
        let policy = identity_policy(&root);
        let statements = policy["Statement"].as_array().unwrap();
        assert!(statements[0].get("Condition").is_none());
        assert_eq!(statements[1]["Resource"], "arn:aws:s3:::lake/*");
        assert_eq!(statements.len(), 4);
    }
}
