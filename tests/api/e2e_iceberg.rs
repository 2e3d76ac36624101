//! Apache Iceberg tables written by pyiceberg through its Glue catalog against moto
//! (tests/api/iceberg.rs): what Glue and S3 hold afterwards is what Lethe's Iceberg
//! reader meets, and pyiceberg reads back what was appended, at the current snapshot and
//! at an older one.

use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake};
use crate::iceberg::{IcebergTable, PEOPLE, Spec, make_table};

fn person(id: i64, email: &str, country: &str, ts: &str) -> Value {
    json!({"id": id, "email": email, "country": country, "ts": ts})
}

fn by_id(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

/// Every object key under the table's location.
async fn keys(lake: &Lake, table: &IcebergTable) -> Vec<String> {
    let prefix = format!("{}/", IcebergTable::key(&table.location));
    let out = lake
        .s3
        .list_objects_v2()
        .bucket(&lake.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn pyiceberg_writes_a_table_that_moto_glue_holds(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
    ];
    let second = vec![person(3, "ann@example.com", "de", "2026-01-03T09:15:00")];
    let spec = Spec::new("people", &PEOPLE)
        .partition("country", "identity")
        .append(first.clone())
        .append(second.clone());
    let table = make_table(&lake, &spec);

    let glue = lake
        .glue
        .get_table()
        .database_name(&lake.database)
        .name("people")
        .send()
        .await
        .unwrap();
    let glue = glue.table().unwrap();
    let parameters = glue.parameters().unwrap();
    assert_eq!(parameters["table_type"], "ICEBERG");
    assert_eq!(parameters["metadata_location"], table.metadata_location);
    let location = glue.storage_descriptor().unwrap().location().unwrap();
    assert_eq!(location, table.location);

    let keys = keys(&lake, &table).await;
    let metadata = IcebergTable::key(&table.metadata_location);
    assert!(keys.iter().any(|k| k == metadata), "{metadata} in {keys:?}");
    assert!(metadata.ends_with(".metadata.json"), "{metadata}");
    assert_eq!(table.format_version, 2);
    assert_eq!(table.snapshots.len(), 2);
    let [one, two] = [&table.snapshots[0], &table.snapshots[1]];
    assert_eq!(two.parent_id, Some(one.id));
    assert_eq!(
        [one.sequence_number, two.sequence_number],
        [Some(1), Some(2)]
    );
    assert_eq!(two.operation.as_deref(), Some("append"));
    assert_eq!(table.refs["main"].snapshot_id, two.id);
    assert_eq!(one.added_files.len(), 2, "one file per country");
    assert_eq!(two.files.len(), 3, "{two:?}");
    for path in two
        .files
        .iter()
        .chain([&one.manifest_list, &two.manifest_list])
    {
        assert!(keys.iter().any(|k| k == IcebergTable::key(path)), "{path}");
    }
    assert!(two.added_files[0].contains("/data/country=de/"), "{two:?}");

    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    assert_eq!(by_id(table.read()), all);
    assert_eq!(by_id(table.read_at(one.id).unwrap()), first);
    assert!(table.read_at(one.id ^ 1).is_err(), "no such snapshot");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn pyiceberg_renames_tags_and_partitions_by_day(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
    ];
    let second =
        json!({"id": 3, "mail": "ann@example.com", "country": "us", "ts": "2026-01-02T23:59:59"});
    let spec = Spec::new("events", &PEOPLE)
        .partition("ts", "day")
        .append(first.clone())
        .rename_after(0, "email", "mail")
        .append(vec![second.clone()])
        .tag("audit", 0);
    let table = make_table(&lake, &spec);

    let [one, two] = [&table.snapshots[0], &table.snapshots[1]];
    assert_eq!(table.refs["audit"].snapshot_id, one.id);
    assert_eq!(table.refs["audit"].kind, "tag");
    assert!(
        two.added_files[0].contains("/data/ts_day=2026-01-02/"),
        "{two:?}"
    );
    let renamed = |r: &Value| {
        let mut r = r.clone();
        let email = r.as_object_mut().unwrap().remove("email").unwrap();
        r["mail"] = email;
        r
    };
    let mut now: Vec<Value> = first.iter().map(renamed).collect();
    now.push(second.clone());
    assert_eq!(by_id(table.read()), now);
    assert_eq!(by_id(table.read_at(one.id).unwrap()), first, "old names");

    let later = table.append(vec![
        json!({"id": 4, "mail": "eve@example.com", "country": "de", "ts": "2026-01-05T00:00:00"}),
    ]);
    assert_eq!(later.snapshots.len(), 3);
    assert_eq!(later.snapshots[2].parent_id, Some(two.id));
    assert_ne!(later.metadata_location, table.metadata_location);
    assert_eq!(later.read().len(), 4);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn pyiceberg_writes_format_version_1_tables_too(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let rows = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
        json!({"id": 3, "email": null, "country": "us", "ts": null}),
    ];
    let table = make_table(
        &lake,
        &Spec::new("legacy", &PEOPLE)
            .format_version(1)
            .append(rows.clone()),
    );
    assert_eq!(table.format_version, 1);
    let current = table.current();
    assert_eq!(current.operation.as_deref(), Some("append"));
    assert_eq!(current.files.len(), 1, "{current:?}");
    assert!(
        current.files[0].contains("/legacy/data/00000-"),
        "{current:?}"
    );
    assert_eq!(by_id(table.read()), rows);
}
