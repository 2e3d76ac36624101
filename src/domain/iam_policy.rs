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
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];
/// S3 bucket actions, limited to the prefix by condition.
const BUCKET_ACTIONS: &[&str] = &["s3:ListBucket", "s3:ListBucketVersions"];

/// What the documents are about.
#[derive(Debug, Clone)]
pub struct PolicyTarget<'a> {
    pub bucket: &'a str,
    /// Key prefix of the table (may be empty: the whole bucket).
    pub prefix: &'a str,
    /// Glue database and table, when the mapper is Glue-backed.
    pub glue_table: Option<(&'a str, &'a str)>,
    pub role_arn: Option<&'a str>,
}

/// The identity policy for Lethe's role (or the mapper's `role_arn`).
pub fn identity_policy(target: &PolicyTarget<'_>) -> Value {
    let mut statements = s3_statements(target, None);
    if let Some((database, table)) = target.glue_table {
        statements.push(json!({
            "Sid": "ReadGlueTable",
            "Effect": "Allow",
            "Action": ["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"],
            "Resource": [
                "arn:aws:glue:*:*:catalog",
                format!("arn:aws:glue:*:*:database/{database}"),
                format!("arn:aws:glue:*:*:table/{database}/{table}"),
            ],
        }));
    }
    statements.push(json!({
        "Sid": "UseKmsKeysThroughS3",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
    }));
    json!({"Version": "2012-10-17", "Statement": statements})
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
    if !target.prefix.is_empty() {
        list["Condition"] = json!({"StringLike": {"s3:prefix": [format!("{}*", target.prefix)]}});
    }
    let mut objects = json!({
        "Sid": "RewriteTableObjects",
        "Effect": "Allow",
        "Action": OBJECT_ACTIONS,
        "Resource": format!("{bucket_arn}/{}*", target.prefix),
    });
    if let Some(role) = principal {
        list["Principal"] = json!({"AWS": role});
        objects["Principal"] = json!({"AWS": role});
    }
    vec![list, objects]
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
        }
    }

    #[test]
    fn identity_policy_is_scoped_to_the_prefix_and_table() {
        let policy = identity_policy(&target());
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
        assert_eq!(
            statements[2]["Resource"][2],
            "arn:aws:glue:*:*:table/db/people"
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
    fn a_table_at_the_bucket_root_lists_without_a_prefix_condition() {
        let root = PolicyTarget {
            prefix: "",
            glue_table: None,
            ..target()
        };
        let policy = identity_policy(&root);
        let statements = policy["Statement"].as_array().unwrap();
        assert!(statements[0].get("Condition").is_none());
        assert_eq!(statements[1]["Resource"], "arn:aws:s3:::lake/*");
        assert_eq!(statements.len(), 3);
    }
}
