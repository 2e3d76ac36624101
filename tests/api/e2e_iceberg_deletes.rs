//! Iceberg tables with position delete files (merge-on-read deletes, as Athena's and
//! Spark's `DELETE` write them; pyiceberg's own writers build them here, see
//! `iceberg_table.py`'s `delete_positions`): a deleted row is still in its data file, so
//! Lethe's rewrite of that file leaves it out too, and the new snapshot no longer needs
//! the delete file.

use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake};
use crate::e2e_iceberg::{
    by_id, etags, iceberg_mapper, person, run_forgets, start_job, versions_holding,
};
use crate::iceberg::{IcebergTable, PEOPLE, Spec, make_table};

/// `people` by country: ann (the subject) in both of `de`'s data files, others beside
/// her. The table and every row, by id.
fn people(lake: &Lake) -> (IcebergTable, Vec<Value>) {
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
        person(5, "dan@example.com", "fr", "2026-01-02T11:31:00"),
    ];
    let second = vec![
        person(3, "ann@example.com", "de", "2026-01-03T09:15:00"),
        person(4, "cyd@example.com", "de", "2026-01-03T09:16:00"),
        person(6, "eve@example.com", "de", "2026-01-03T09:17:00"),
    ];
    let spec = Spec::new("people", &PEOPLE)
        .partition("country", "identity")
        .append(first.clone())
        .append(second.clone());
    let rows = by_id(first.into_iter().chain(second).collect());
    (make_table(lake, &spec), rows)
}

/// The data file of partition `country` that append `n` (from 0) added.
fn added(table: &IcebergTable, n: usize, country: &str) -> String {
    let needle = format!("country={country}/");
    table.snapshots[n]
        .added_files
        .iter()
        .find(|f| f.contains(&needle))
        .cloned()
        .unwrap_or_else(|| panic!("append {n} added a {country} file: {table:?}"))
}

fn without(rows: &[Value], emails: &[&str]) -> Vec<Value> {
    rows.iter()
        .filter(|r| !emails.iter().any(|e| r["email"] == *e))
        .cloned()
        .collect()
}

/// Whether any version of the object at `path` is still in the lake.
async fn has_versions(lake: &Lake, path: &str) -> bool {
    let key = IcebergTable::key(path);
    let out = lake
        .s3
        .list_object_versions()
        .bucket(&lake.bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    out.versions().iter().any(|v| v.key() == Some(key))
        || out.delete_markers().iter().any(|v| v.key() == Some(key))
}

/// cyd's row was deleted by a position delete file in the data file that also holds ann;
/// bob's in a file without her. Lethe's rewrite of ann's file leaves cyd out too (the
/// new file is named by no delete file), the new snapshot drops cyd's delete file and
/// keeps bob's, and after the purge no version under the table holds ann, nor cyd (whose
/// row the merge-on-read delete had left in the file). pyiceberg and DuckDB read exactly
/// the rows that were visible, less ann's.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn position_deletes_are_applied_in_the_rewrite_and_their_file_retired(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let (table, rows) = people(&lake);
    let (de, fr) = (added(&table, 1, "de"), added(&table, 0, "fr"));
    // Rows are written in the order appended, per partition: cyd is row 1, bob row 0.
    let (table, cyd_deletes) = table.delete_positions(&[(de.as_str(), &[1])]);
    let (table, bob_deletes) = table.delete_positions(&[(fr.as_str(), &[0])]);
    let visible = without(&rows, &["cyd@example.com", "bob@example.com"]);
    assert_eq!(
        by_id(table.read()),
        visible,
        "pyiceberg applies both delete files"
    );
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;

    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["objects_rewritten"], 2, "{job}");
    assert_eq!(job["stats"]["rows_removed"], 3, "ann twice and cyd: {job}");
    let expected = without(&visible, &["ann@example.com"]);
    assert_eq!(by_id(table.read()), expected);
    let columns = |r: &Value| json!({"id": r["id"], "email": r["email"], "country": r["country"]});
    let expected: Vec<Value> = expected.iter().map(columns).collect();
    assert_eq!(table.read_with_duckdb(&lake).await, expected, "DuckDB too");
    assert!(
        !has_versions(&lake, &cyd_deletes).await,
        "retired, then purged"
    );
    assert!(has_versions(&lake, &bob_deletes).await, "still needed");
    for gone in ["ann@example.com", "cyd@example.com"] {
        assert_eq!(
            versions_holding(&lake, &table, gone).await,
            Vec::<String>::new(),
            "{gone}"
        );
    }
    let report = lake.report(&job).await;
    let rewritten: Vec<&Value> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"].as_str().is_some_and(|k| de.ends_with(k)))
        .collect();
    assert_eq!(rewritten.len(), 1, "{report}");
    assert_eq!(rewritten[0]["rows_removed"], 2, "{report}");
    assert_eq!(
        rewritten[0]["position_deletes_applied"],
        json!([cyd_deletes]),
        "{report}"
    );
    assert_eq!(lake.account(&job, &ann).await["status"], "erased");
    assert!(lake.queued().await.is_empty());
}

/// A position delete file committed between Lethe's rewrite and its commit deletes a
/// row of a rewritten file: the rewrite would bring that row back, so the commit is
/// refused (the new files deleted, nothing of the table changed) and ann stays queued.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_position_delete_committed_after_the_rewrite_refuses_the_commit(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let (table, rows) = people(&lake);
    let de = added(&table, 1, "de");
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;
    let job = start_job(&lake).await;
    run_forgets(&lake, 2).await;
    // eve (row 2) deleted by another writer after the rewrite.
    let (table, _) = table.delete_positions(&[(de.as_str(), &[2])]);
    let mut before = etags(&lake, &table).await;
    before.retain(|k, _| !k.contains("-lethe-"));
    lake.app.worker("w").run_until_idle().await.unwrap();

    let refused = crate::e2e_csv::messages(&lake, &job, "table_commit_refused").await;
    assert!(
        refused
            .first()
            .is_some_and(|m| m.contains("committed since Lethe rewrote")),
        "{refused:?}"
    );
    assert_eq!(
        etags(&lake, &table).await,
        before,
        "the new data files are deleted, nothing else written"
    );
    assert_eq!(
        by_id(table.read()),
        without(&rows, &["eve@example.com"]),
        "the table reads as the other writer left it"
    );
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
    assert_eq!(lake.account(&job, &ann).await["status"], "kept");
}

/// The table is rolled back past a delete file after Lethe's rewrite applied it: the row
/// it deleted is visible again, and the rewrite would drop it, so the commit is refused
/// (nothing of the table changed) and ann stays queued.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_delete_file_rolled_back_after_the_rewrite_refuses_the_commit(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let (table, rows) = people(&lake);
    let de = added(&table, 1, "de");
    let before_delete = table.current().id;
    let (table, _) = table.delete_positions(&[(de.as_str(), &[1])]);
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;
    let job = start_job(&lake).await;
    run_forgets(&lake, 2).await;
    let table = table.rollback_to(before_delete);
    assert_eq!(by_id(table.read()), rows, "cyd is visible again");
    let mut before = etags(&lake, &table).await;
    before.retain(|k, _| !k.contains("-lethe-"));
    lake.app.worker("w").run_until_idle().await.unwrap();

    let refused = crate::e2e_csv::messages(&lake, &job, "table_commit_refused").await;
    assert!(
        refused
            .first()
            .is_some_and(|m| m.contains("no longer in the table's current snapshot")),
        "{refused:?}"
    );
    assert_eq!(etags(&lake, &table).await, before, "nothing else written");
    assert_eq!(by_id(table.read()), rows, "cyd still there");
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
    assert_eq!(lake.account(&job, &ann).await["status"], "kept");
}
