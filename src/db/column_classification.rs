//! `column_classification`: PII classification per catalog column.

use std::collections::HashMap;

use sqlx::PgExecutor;

use crate::domain::classification::{Classification, Classified};

/// The stored classifications of one table, by lowercased column name.
pub async fn get_classifications(
    db: impl PgExecutor<'_>,
    database: &str,
    table: &str,
) -> sqlx::Result<HashMap<String, Classified>> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        r#"select column_name, classification, category from column_classification
           where database_name = $1 and table_name = $2"#,
    )
    .bind(database)
    .bind(table)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, c, category)| {
            let classification = Classification::parse(&c).unwrap_or(Classification::Unclassified);
            (
                name,
                Classified {
                    classification,
                    category,
                },
            )
        })
        .collect())
}

/// Sets the classification of the given columns (others keep theirs).
pub async fn upsert_classifications(
    db: impl PgExecutor<'_>,
    database: &str,
    table: &str,
    columns: &[(String, Classified)],
    actor: &str,
) -> sqlx::Result<()> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let classes: Vec<&str> = columns
        .iter()
        .map(|(_, c)| c.classification.as_str())
        .collect();
    let categories: Vec<Option<String>> = columns.iter().map(|(_, c)| c.category.clone()).collect();
    sqlx::query(
        r#"insert into column_classification
               (database_name, table_name, column_name, classification, category, updated_by)
           select $1, $2, t.name, t.classification, t.category, $6
           from unnest($3::text[], $4::text[], $5::text[]) as t(name, classification, category)
           on conflict (database_name, table_name, column_name) do update set
               classification = excluded.classification, category = excluded.category,
               updated_by = excluded.updated_by, updated_at = now()"#,
    )
    .bind(database)
    .bind(table)
    .bind(&names)
    .bind(&classes)
    .bind(&categories)
    .bind(actor)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn classifications_upsert_per_column(pool: sqlx::PgPool) {
        let pii = Classified {
            classification: Classification::Pii,
            category: Some("contact.email".into()),
        };
        let non = Classified {
            classification: Classification::NonPii,
            category: None,
        };
        upsert_classifications(
            &pool,
            "lake",
            "t",
            &[("email".into(), pii.clone()), ("id".into(), non.clone())],
            "g",
        )
        .await
        .unwrap();
        upsert_classifications(&pool, "lake", "t", &[("id".into(), pii.clone())], "g")
            .await
            .unwrap();
        let got = get_classifications(&pool, "lake", "t").await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["email"], pii);
        assert_eq!(got["id"].classification, Classification::Pii);
        assert!(
            get_classifications(&pool, "lake", "other")
                .await
                .unwrap()
                .is_empty()
        );
    }
}
