//! Keeping the job tables lean. `task` is a queue and `job` / `job_object` rows change
//! with every task: each change leaves a dead row version in their indexes that claims
//! and probes step over until VACUUM removes it. Autovacuum does that when it is on (the
//! migrations give these tables fixed thresholds), but it may be off or slow, and then
//! the cost of a claim grows with the job. So workers also vacuum these tables
//! themselves once enough dead rows have piled up ([`vacuum_if_needed`]).

use sqlx::PgPool;

/// A job table and how many dead rows it may hold before it is vacuumed.
struct Lean {
    table: &'static str,
    vacuum: &'static str,
    max_dead: i64,
}

const TABLES: [Lean; 4] = [
    Lean {
        table: "task",
        vacuum: "vacuum (analyze) task",
        max_dead: 5_000,
    },
    Lean {
        table: "job",
        vacuum: "vacuum job",
        max_dead: 1_000,
    },
    Lean {
        table: "job_object",
        vacuum: "vacuum (analyze) job_object",
        max_dead: 10_000,
    },
    Lean {
        table: "job_event",
        vacuum: "vacuum (analyze) job_event",
        max_dead: 20_000,
    },
];

/// The advisory lock key of table maintenance ("lethev" in ASCII): one process at a
/// time vacuums.
const MAINTENANCE_LOCK: i64 = 0x0000_6c65_7468_6576;

/// Vacuums each job table holding more dead rows than its bound; returns the tables
/// vacuumed. Does nothing while another process holds the maintenance lock.
pub async fn vacuum_if_needed(pool: &PgPool) -> sqlx::Result<Vec<&'static str>> {
    let mut conn = pool.acquire().await?;
    let leader: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(MAINTENANCE_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !leader {
        return Ok(Vec::new());
    }
    let outcome = vacuum_tables(&mut conn).await;
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(MAINTENANCE_LOCK)
        .execute(&mut *conn)
        .await?;
    outcome
}

async fn vacuum_tables(conn: &mut sqlx::PgConnection) -> sqlx::Result<Vec<&'static str>> {
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "select relname::text, n_dead_tup from pg_stat_user_tables
         where schemaname = current_schema() and relname = any($1)",
    )
    .bind(TABLES.map(|t| t.table).to_vec())
    .fetch_all(&mut *conn)
    .await?;
    let mut done = Vec::new();
    for lean in &TABLES {
        let n = dead
            .iter()
            .find(|(t, _)| t == lean.table)
            .map_or(0, |(_, n)| *n);
        if n > lean.max_dead {
            sqlx::query(lean.vacuum).execute(&mut *conn).await?;
            done.push(lean.table);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_table_full_of_dead_rows_is_vacuumed_and_a_clean_one_is_not(db: PgPool) {
        assert!(vacuum_if_needed(&db).await.unwrap().is_empty());
        for _ in 0..3 {
            sqlx::query(
                "insert into task (kind, payload, max_attempts)
                 select 'test', '{}', 1 from generate_series(1, 2500)",
            )
            .execute(&db)
            .await
            .unwrap();
            sqlx::query("delete from task").execute(&db).await.unwrap();
        }
        // Statistics reach pg_stat_user_tables when the backend reports them.
        let mut vacuumed = Vec::new();
        for _ in 0..50 {
            vacuumed = vacuum_if_needed(&db).await.unwrap();
            if !vacuumed.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(vacuumed, ["task"]);
        assert!(vacuum_if_needed(&db).await.unwrap().is_empty(), "clean now");
    }

    /// Postgres 15 lets only a table's owner VACUUM it (anyone else gets a warning and
    /// nothing done): the runtime role owns the job tables (migration `runtime_role`).
    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_runtime_role_vacuums_the_job_tables(db: PgPool) {
        let runtime = crate::db::runtime_pool(&db).await;
        for table in TABLES.map(|t| t.table) {
            let owned: bool = sqlx::query_scalar(
                "select pg_has_role('lethe_runtime_test', relowner, 'USAGE') from pg_class
                 where oid = to_regclass($1)",
            )
            .bind(table)
            .fetch_one(&db)
            .await
            .unwrap();
            assert!(owned, "{table}");
        }
        let vacuums = || async {
            let n: i64 = sqlx::query_scalar(
                "select vacuum_count from pg_stat_user_tables where relname = 'task'
                 and schemaname = current_schema()",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            n
        };
        let before = vacuums().await;
        for _ in 0..3 {
            sqlx::query(
                "insert into task (kind, payload, max_attempts)
                 select 'test', '{}', 1 from generate_series(1, 2500)",
            )
            .execute(&runtime)
            .await
            .unwrap();
            sqlx::query("delete from task")
                .execute(&runtime)
                .await
                .unwrap();
        }
        let mut vacuumed = Vec::new();
        for _ in 0..50 {
            vacuumed = vacuum_if_needed(&runtime).await.unwrap();
            if !vacuumed.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(vacuumed, ["task"]);
        let mut after = before;
        for _ in 0..50 {
            after = vacuums().await;
            if after > before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(after > before, "VACUUM as the runtime role did nothing");
    }
}
