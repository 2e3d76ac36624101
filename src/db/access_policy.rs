//! `access_policy` and `grant_drift`: declared grants, and what the reconciler saw.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;

use crate::domain::access_policy::{Access, AccessPolicy, TableRef};

/// A stored policy.
#[derive(Debug, Clone)]
pub struct AccessPolicyRecord {
    pub policy: AccessPolicy,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    access_policy_id: String,
    principal: String,
    tables: Json<Vec<TableRef>>,
    access: Json<Access>,
    permissions: Vec<String>,
    grant_option: bool,
    created_by: String,
    updated_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Only the upsert returns it.
    #[sqlx(default)]
    inserted: bool,
}

impl From<PolicyRow> for AccessPolicyRecord {
    fn from(r: PolicyRow) -> Self {
        AccessPolicyRecord {
            policy: AccessPolicy {
                name: r.access_policy_id,
                principal: r.principal,
                tables: r.tables.0,
                access: r.access.0,
                permissions: r.permissions,
                grant_option: r.grant_option,
            },
            created_by: r.created_by,
            updated_by: r.updated_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str = "access_policy_id, principal, tables, access, permissions, grant_option, \
    created_by, updated_by, created_at, updated_at";

/// Creates or replaces a policy; true when created.
pub async fn upsert_access_policy(
    db: impl PgExecutor<'_>,
    p: &AccessPolicy,
    actor: &str,
) -> sqlx::Result<(AccessPolicyRecord, bool)> {
    let sql = format!(
        r#"insert into access_policy (access_policy_id, principal, tables, access, permissions,
               grant_option, created_by, updated_by)
           values ($1, $2, $3, $4, $5, $6, $7, $7)
           on conflict (access_policy_id) do update set principal = excluded.principal,
               tables = excluded.tables, access = excluded.access,
               permissions = excluded.permissions, grant_option = excluded.grant_option,
               updated_by = excluded.updated_by, updated_at = now()
           returning {COLUMNS}, (xmax = 0) as inserted"#
    );
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&p.name)
        .bind(&p.principal)
        .bind(Json(&p.tables))
        .bind(Json(&p.access))
        .bind(&p.permissions)
        .bind(p.grant_option)
        .bind(actor)
        .fetch_one(db)
        .await?;
    let inserted = row.inserted;
    Ok((row.into(), inserted))
}

pub async fn get_access_policy(
    db: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<AccessPolicyRecord> {
    let sql = format!("select {COLUMNS} from access_policy where access_policy_id = $1");
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(db)
        .await?;
    Ok(row.into())
}

/// The policy as it is now, locked until the transaction ends (None: there is none).
pub async fn lock_access_policy(
    db: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<Option<AccessPolicyRecord>> {
    let sql = format!("select {COLUMNS} from access_policy where access_policy_id = $1 for update");
    let row: Option<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Into::into))
}

/// Lists policies in name order from `start_at`; `limit` None lists all.
pub async fn list_access_policies(
    db: impl PgExecutor<'_>,
    start_at: Option<&str>,
    limit: Option<i64>,
) -> sqlx::Result<Vec<AccessPolicyRecord>> {
    let sql = format!(
        "select {COLUMNS} from access_policy where ($1::text is null or access_policy_id >= $1) \
         order by access_policy_id limit $2"
    );
    let rows: Vec<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(start_at)
        .bind(limit)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn delete_access_policy(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(r#"delete from access_policy where access_policy_id = $1"#)
        .bind(name)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Remembers tables as governed (idempotent).
pub async fn insert_governed_tables(
    db: impl PgExecutor<'_>,
    tables: &[(String, String)],
) -> sqlx::Result<()> {
    let dbs: Vec<&str> = tables.iter().map(|(d, _)| d.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|(_, t)| t.as_str()).collect();
    sqlx::query(
        r#"insert into governed_table (database_name, table_name)
           select * from unnest($1::text[], $2::text[]) on conflict do nothing"#,
    )
    .bind(&dbs)
    .bind(&names)
    .execute(db)
    .await?;
    Ok(())
}

/// Every table Lethe has governed.
pub async fn list_governed_tables(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(r#"select database_name, table_name from governed_table order by 1, 2"#)
        .fetch_all(db)
        .await
}

/// A reconciler observation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DriftRecord {
    pub drift: Value,
    pub drifted_grants: i32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_drift(
    db: impl PgExecutor<'_>,
    drift: &Value,
    drifted: i32,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(r#"insert into grant_drift (drift, drifted_grants, error) values ($1, $2, $3)"#)
        .bind(drift)
        .bind(drifted)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn latest_drift(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DriftRecord>> {
    sqlx::query_as(
        r#"select drift, drifted_grants, error, created_at from grant_drift
           order by grant_drift_id desc limit 1"#,
    )
    .fetch_optional(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access_policy::AccessLevel;

    fn policy(name: &str) -> AccessPolicy {
        AccessPolicy {
            name: name.into(),
            principal: "123456789012".into(),
            tables: vec![TableRef {
                database: "lake".into(),
                table: "*".into(),
            }],
            access: Access::Level(AccessLevel::NonPiiColumns),
            permissions: vec!["SELECT".into()],
            grant_option: false,
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn policies_round_trip_list_and_delete(pool: sqlx::PgPool) {
        let (_, created) = upsert_access_policy(&pool, &policy("b"), "g")
            .await
            .unwrap();
        assert!(created);
        let mut changed = policy("b");
        changed.grant_option = true;
        let (r, created) = upsert_access_policy(&pool, &changed, "h").await.unwrap();
        assert!(!created);
        assert_eq!(r.policy, changed);
        assert_eq!(r.created_by, "g");
        upsert_access_policy(&pool, &policy("a"), "g")
            .await
            .unwrap();
        let names: Vec<String> = list_access_policies(&pool, None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.policy.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            list_access_policies(&pool, Some("b"), Some(1))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(delete_access_policy(&pool, "a").await.unwrap());
        assert!(matches!(
            get_access_policy(&pool, "a").await,
            Err(sqlx::Error::RowNotFound)
        ));
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn governed_tables_are_remembered_once(pool: sqlx::PgPool) {
        let t = vec![
            ("lake".to_owned(), "a".to_owned()),
            ("lake".to_owned(), "b".to_owned()),
        ];
        insert_governed_tables(&pool, &t).await.unwrap();
        insert_governed_tables(&pool, &t[..1]).await.unwrap();
        assert_eq!(list_governed_tables(&pool).await.unwrap(), t);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_latest_drift_wins(pool: sqlx::PgPool) {
        assert!(latest_drift(&pool).await.unwrap().is_none());
        insert_drift(&pool, &serde_json::json!({"n": 1}), 1, None)
            .await
            .unwrap();
        insert_drift(&pool, &serde_json::json!({"n": 2}), 0, Some("boom"))
            .await
            .unwrap();
        let latest = latest_drift(&pool).await.unwrap().unwrap();
        assert_eq!(latest.drifted_grants, 0);
        assert_eq!(latest.error.as_deref(), Some("boom"));
    }
}
