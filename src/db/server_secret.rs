//! `server_secret`: key material Lethe generates for itself.

use sqlx::PgExecutor;

/// Returns the secret called `name`, creating it from `generate` when missing. Concurrent
/// first starts agree on one value (insert-if-absent, then read).
pub async fn get_or_create(
    conn: &mut sqlx::PgConnection,
    name: &str,
    generate: impl FnOnce() -> Vec<u8>,
) -> sqlx::Result<Vec<u8>> {
    insert_if_absent(&mut *conn, name, &generate()).await?;
    sqlx::query_scalar(r#"select value from server_secret where name = $1"#)
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}

async fn insert_if_absent(db: impl PgExecutor<'_>, name: &str, value: &[u8]) -> sqlx::Result<()> {
    sqlx::query(
        r#"insert into server_secret (name, value) values ($1, $2) on conflict do nothing"#,
    )
    .bind(name)
    .bind(value)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_first_secret_generated_is_kept(pool: sqlx::PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        let first = get_or_create(&mut conn, "jwt", || vec![1; 32])
            .await
            .unwrap();
        let second = get_or_create(&mut conn, "jwt", || vec![2; 32])
            .await
            .unwrap();
        assert_eq!(first, vec![1; 32]);
        assert_eq!(second, first);
    }
}
