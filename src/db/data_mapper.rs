//! `data_mapper`: which tables hold subject data.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgExecutor, Row};

use crate::domain::data_mapper::{
    CatalogRef, ColumnPath, DataMapper, DataMapperId, FindEngine, Format,
};

/// A stored data mapper with its bookkeeping fields.
#[derive(Debug, Clone)]
pub struct DataMapperRecord {
    pub mapper: DataMapper,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "data_mapper_id, catalog, format, columns, partition_keys, role_arn, \
    delete_old_versions, ignore_object_not_found, allow_unversioned, skip_archived, \
    expire_tagged_snapshots, automatic_jobs, find_engine, \
    column_types, created_by, updated_by, created_at, updated_at";

fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<DataMapperRecord> {
    let decode = |field: &str, message: String| sqlx::Error::ColumnDecode {
        index: field.to_owned(),
        source: message.into(),
    };
    let id: String = row.try_get("data_mapper_id")?;
    let format: String = row.try_get("format")?;
    let engine: String = row.try_get("find_engine")?;
    let columns: Vec<String> = row.try_get("columns")?;
    let Json(catalog): Json<CatalogRef> = row.try_get("catalog")?;
    Ok(DataMapperRecord {
        mapper: DataMapper {
            id: DataMapperId::parse(&id).map_err(|m| decode("data_mapper_id", m))?,
            catalog,
            format: Format::parse(&format).ok_or_else(|| decode("format", format.clone()))?,
            columns: columns
                .iter()
                .map(|c| ColumnPath::parse(c).map_err(|m| decode("columns", m)))
                .collect::<sqlx::Result<_>>()?,
            partition_keys: row.try_get("partition_keys")?,
            role_arn: row.try_get("role_arn")?,
            delete_old_versions: row.try_get("delete_old_versions")?,
            ignore_object_not_found: row.try_get("ignore_object_not_found")?,
            allow_unversioned: row.try_get("allow_unversioned")?,
            skip_archived: row.try_get("skip_archived")?,
            expire_tagged_snapshots: row.try_get("expire_tagged_snapshots")?,
            automatic_jobs: row.try_get("automatic_jobs")?,
            column_types: row
                .try_get::<Json<std::collections::BTreeMap<String, String>>, _>("column_types")?
                .0,
            find_engine: FindEngine::parse(&engine)
                .ok_or_else(|| decode("find_engine", engine.clone()))?,
        },
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Creates or replaces a mapper. Returns the record and whether it was created.
pub async fn upsert_data_mapper(
    db: impl PgExecutor<'_>,
    mapper: &DataMapper,
    actor: &str,
) -> sqlx::Result<(DataMapperRecord, bool)> {
    let columns: Vec<String> = mapper.columns.iter().map(ToString::to_string).collect();
    let sql = format!(
        r#"insert into data_mapper (data_mapper_id, catalog, format, columns, partition_keys,
               role_arn, delete_old_versions, ignore_object_not_found, find_engine,
               created_by, updated_by, allow_unversioned, skip_archived, column_types,
               automatic_jobs, expire_tagged_snapshots)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15)
           on conflict (data_mapper_id) do update set
               catalog = excluded.catalog, format = excluded.format, columns = excluded.columns,
               partition_keys = excluded.partition_keys, role_arn = excluded.role_arn,
               delete_old_versions = excluded.delete_old_versions,
               ignore_object_not_found = excluded.ignore_object_not_found,
               allow_unversioned = excluded.allow_unversioned,
               skip_archived = excluded.skip_archived,
               expire_tagged_snapshots = excluded.expire_tagged_snapshots,
               automatic_jobs = excluded.automatic_jobs,
               column_types = excluded.column_types,
               find_engine = excluded.find_engine, updated_by = excluded.updated_by,
               updated_at = now()
           returning {COLUMNS}, (xmax = 0) as inserted"#
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(mapper.id.as_str())
        .bind(Json(&mapper.catalog))
        .bind(mapper.format.as_str())
        .bind(&columns)
        .bind(&mapper.partition_keys)
        .bind(&mapper.role_arn)
        .bind(mapper.delete_old_versions)
        .bind(mapper.ignore_object_not_found)
        .bind(mapper.find_engine.as_str())
        .bind(actor)
        .bind(mapper.allow_unversioned)
        .bind(mapper.skip_archived)
        .bind(Json(&mapper.column_types))
        .bind(mapper.automatic_jobs)
        .bind(mapper.expire_tagged_snapshots)
        .fetch_one(db)
        .await?;
    Ok((from_row(&row)?, row.try_get("inserted")?))
}

pub async fn get_data_mapper(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<DataMapperRecord> {
    let sql = format!("select {COLUMNS} from data_mapper where data_mapper_id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(db)
        .await?;
    from_row(&row)
}

/// The mapper as it is now, locked until the transaction ends (None: there is none), so
/// an audit's "before" is what the change replaced.
pub async fn lock_data_mapper(
    db: impl PgExecutor<'_>,
    id: &str,
) -> sqlx::Result<Option<DataMapperRecord>> {
    let sql = format!("select {COLUMNS} from data_mapper where data_mapper_id = $1 for update");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Lists up to `limit` mappers in id order, from `start_at` (inclusive).
pub async fn list_data_mappers(
    db: impl PgExecutor<'_>,
    start_at: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<DataMapperRecord>> {
    let sql = format!(
        "select {COLUMNS} from data_mapper where ($1::text is null or data_mapper_id >= $1) \
         order by data_mapper_id limit $2"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(start_at)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Every mapper's id.
pub async fn list_ids(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select data_mapper_id from data_mapper order by data_mapper_id")
        .fetch_all(db)
        .await
}

/// What a composite match may name in each of the named mappers that exist — its match
/// columns, then its matchable partition keys — locking them against deletion until
/// the caller's transaction ends (so queue items never name a vanished mapper).
pub async fn lock_mapper_columns(
    db: impl PgExecutor<'_>,
    ids: &[String],
) -> sqlx::Result<Vec<(String, Vec<String>)>> {
    sqlx::query_as(
        r#"select data_mapper_id, columns || partition_keys from data_mapper
           where data_mapper_id = any($1) order by data_mapper_id for share"#,
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

/// The matchable partition keys of these mappers.
pub async fn partition_keys_of(
    db: impl PgExecutor<'_>,
    ids: &[String],
) -> sqlx::Result<std::collections::HashMap<String, Vec<String>>> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "select data_mapper_id, partition_keys from data_mapper where data_mapper_id = any($1)",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Every mapper's match column types (dotted path → Glue type; empty: untyped).
pub async fn column_types_by_mapper(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<std::collections::HashMap<String, std::collections::BTreeMap<String, String>>> {
    let rows: Vec<(String, Json<std::collections::BTreeMap<String, String>>)> =
        sqlx::query_as("select data_mapper_id, column_types from data_mapper")
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, Json(types))| (id, types))
        .collect())
}

/// Deletes a mapper; false when there was none.
pub async fn delete_data_mapper(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<bool> {
    let result = sqlx::query(r#"delete from data_mapper where data_mapper_id = $1"#)
        .bind(id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn mapper(id: &str) -> DataMapper {
        DataMapper {
            id: DataMapperId::parse(id).unwrap(),
            catalog: CatalogRef::Path(crate::domain::data_mapper::PathTable {
                location: "s3://lake/people/".into(),
                format: Some(Format::Parquet),
                partition_keys: vec!["year".into()],
                csv: None,
            }),
            format: Format::Parquet,
            columns: vec![ColumnPath::parse("contact.email").unwrap()],
            partition_keys: vec!["year".into()],
            role_arn: None,
            delete_old_versions: true,
            ignore_object_not_found: false,
            allow_unversioned: false,
            skip_archived: false,
            expire_tagged_snapshots: false,
            automatic_jobs: false,
            column_types: Default::default(),
            find_engine: FindEngine::Embedded,
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn upsert_creates_then_replaces_keeping_the_creator(pool: sqlx::PgPool) {
        let (created, inserted) = upsert_data_mapper(&pool, &mapper("people"), "alice")
            .await
            .unwrap();
        assert!(inserted);
        assert_eq!(created.mapper, mapper("people"));
        let mut changed = mapper("people");
        changed.delete_old_versions = false;
        let (replaced, inserted) = upsert_data_mapper(&pool, &changed, "bob").await.unwrap();
        assert!(!inserted);
        assert_eq!(replaced.created_by, "alice");
        assert_eq!(replaced.updated_by, "bob");
        assert!(
            !get_data_mapper(&pool, "people")
                .await
                .unwrap()
                .mapper
                .delete_old_versions
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn list_pages_in_id_order_and_delete_reports_absence(pool: sqlx::PgPool) {
        for id in ["c", "a", "b"] {
            upsert_data_mapper(&pool, &mapper(id), "alice")
                .await
                .unwrap();
        }
        let page = list_data_mappers(&pool, None, 2).await.unwrap();
        assert_eq!(
            page.iter()
                .map(|r| r.mapper.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let rest = list_data_mappers(&pool, Some("c"), 2).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert!(delete_data_mapper(&pool, "a").await.unwrap());
        assert!(!delete_data_mapper(&pool, "a").await.unwrap());
        assert!(matches!(
            get_data_mapper(&pool, "a").await,
            Err(sqlx::Error::RowNotFound)
        ));
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn lock_mapper_columns_returns_only_existing_mappers(pool: sqlx::PgPool) {
        upsert_data_mapper(&pool, &mapper("people"), "alice")
            .await
            .unwrap();
        let found = lock_mapper_columns(&pool, &["people".into(), "ghost".into()])
            .await
            .unwrap();
        assert_eq!(
            found,
            [(
                "people".to_owned(),
                vec!["contact.email".to_owned(), "year".to_owned()]
            )]
        );
    }
}
