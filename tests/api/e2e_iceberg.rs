//! Apache Iceberg tables written by pyiceberg through its Glue catalog against moto
//! (tests/api/iceberg.rs): what Glue and S3 hold afterwards is what Lethe's Iceberg
//! reader meets, and pyiceberg reads back what was appended, at the current snapshot and
//! at an older one.

use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake};
use crate::iceberg::{IcebergTable, PEOPLE, Spec, make_table};

pub(crate) fn person(id: i64, email: &str, country: &str, ts: &str) -> Value {
    json!({"id": id, "email": email, "country": country, "ts": ts})
}

pub(crate) fn by_id(mut rows: Vec<Value>) -> Vec<Value> {
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

/// The current versions under the table's location: key → etag.
pub(crate) async fn etags(
    lake: &Lake,
    table: &IcebergTable,
) -> std::collections::BTreeMap<String, String> {
    let prefix = format!("{}/", IcebergTable::key(&table.location));
    let out = lake
        .s3
        .list_object_versions()
        .bucket(&lake.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.versions()
        .iter()
        .map(|v| {
            (
                format!("{}@{}", v.key().unwrap(), v.version_id().unwrap_or("null")),
                v.e_tag().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `people`, partitioned by `country`, two appends: ann (the subject) in both of `de`'s
/// data files; the table and the rows of each append.
pub(crate) fn people_with_ann(lake: &Lake) -> (IcebergTable, Vec<Value>, Vec<Value>) {
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
    ];
    let second = vec![
        person(3, "ann@example.com", "de", "2026-01-03T09:15:00"),
        person(4, "cyd@example.com", "de", "2026-01-03T09:16:00"),
    ];
    let spec = Spec::new("people", &PEOPLE)
        .partition("country", "identity")
        .append(first.clone())
        .append(second.clone());
    (make_table(lake, &spec), first, second)
}

/// [`people_with_ann`] with its mapper and her id queued; the table, each append's rows
/// and her id.
pub(crate) async fn ann_queued(lake: &Lake) -> (IcebergTable, Vec<Value>, Vec<Value>, Value) {
    let (table, first, second) = people_with_ann(lake);
    iceberg_mapper(lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(lake, std::slice::from_ref(&ann)).await;
    (table, first, second, ann)
}

/// The rows of `appends` without the subject's, by id.
fn without_ann(appends: &[&[Value]]) -> Vec<Value> {
    let rows = appends.iter().flat_map(|a| a.iter());
    by_id(
        rows.filter(|r| r["email"] != "ann@example.com")
            .cloned()
            .collect(),
    )
}

/// An Iceberg mapper on `email`: its data files are searched as Parquet.
pub(crate) async fn iceberg_mapper(lake: &Lake, table: &IcebergTable) {
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": table.name},
        "format": "parquet",
        "columns": ["email"],
    });
    let r = lake
        .app
        .put(&format!("/v1/data_mappers/{}", table.name), body)
        .await;
    assert!(r.status.is_success(), "{}", r.body);
}

/// Lethe reads a pyiceberg table through its Glue entry: every snapshot's data files are
/// searched (the subject is in two files of two snapshots), the metadata and an orphan
/// file (a copy of a data file no snapshot references) are not the table's. A dry run
/// reports the blast radius and writes nothing.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_iceberg_table_is_searched_through_its_metadata_and_a_dry_run_writes_nothing(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let (table, first, second) = people_with_ann(&lake);
    let [one, two] = [&table.snapshots[0], &table.snapshots[1]];
    let with_ann: Vec<&String> = two
        .files
        .iter()
        .filter(|f| f.contains("country=de"))
        .collect();
    assert_eq!(with_ann.len(), 2, "{two:?}");
    assert!(one.files.contains(with_ann[0]) || one.files.contains(with_ann[1]));
    // An orphan: the bytes of a data file holding the subject, referenced by no snapshot.
    let orphan = format!(
        "{}/data/country=de/orphan.parquet",
        IcebergTable::key(&table.location)
    );
    let bytes =
        crate::e2e_jobs::object_bytes(&lake.s3, &lake.bucket, IcebergTable::key(with_ann[0])).await;
    lake.put(&orphan, &bytes).await;
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;
    let before = etags(&lake, &table).await;

    let r = lake
        .app
        .post(
            "/v1/jobs",
            Some(json!({"dry_run": true, "data_mappers": ["people"]})),
        )
        .await;
    let job = json!({"job_id": r.body["job_id"]});
    lake.app.worker("w").run_until_idle().await.unwrap();
    let dry = lake.report(&job).await;
    assert_eq!(dry["job"]["status"], "completed", "{dry}");
    let account = lake.account(&job, &ann).await;
    assert_eq!(account["status"], "matched", "{account}");
    let a = &account["accounts"][0];
    assert_eq!(
        (a["objects"].as_i64(), a["rows"].as_i64()),
        (Some(2), Some(2)),
        "{a}"
    );
    assert_eq!(
        a["objects_searched"].as_i64(),
        Some(3),
        "three data files: {a}"
    );
    // The matched objects: the two referenced files holding the subject, not the orphan
    // that holds it too.
    let objects = lake.objects(&job).await;
    let matched: Vec<&str> = objects.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = with_ann.iter().map(|f| IcebergTable::key(f)).collect();
    expected.sort();
    assert_eq!(matched, expected, "only the referenced data files");
    let listed = crate::e2e_csv::messages(&lake, &job, "mapper_listed").await;
    assert!(listed[0].contains("not the table's"), "{listed:?}");
    assert_eq!(
        etags(&lake, &table).await,
        before,
        "a dry run writes nothing"
    );

    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    assert_eq!(by_id(table.read()), all);
}

/// A table whose metadata cannot be read exactly (here its manifest list, cut short) fails
/// the mapper before anything is searched or written: never "no match".
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_iceberg_table_whose_metadata_cannot_be_read_fails_find_and_keeps_the_subject(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let spec = Spec::new("broken", &PEOPLE).append(vec![person(
        1,
        "ann@example.com",
        "de",
        "2026-01-01T10:00:00",
    )]);
    let table = make_table(&lake, &spec);
    // The manifest list the snapshot names, cut short.
    let list = IcebergTable::key(&table.current().manifest_list).to_owned();
    let bytes = crate::e2e_jobs::object_bytes(&lake.s3, &lake.bucket, &list).await;
    lake.put(&list, &bytes[..bytes.len() / 2]).await;
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;
    let job = lake.run_job(&["broken"]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let failed = crate::e2e_csv::messages(&lake, &job, "mapper_failed").await;
    assert!(
        failed
            .iter()
            .any(|m| m.contains("manifest list cannot be read")),
        "{failed:?}"
    );
    assert_eq!(lake.queued().await, [ann]);
}

/// A match column renamed in the table's history: the files written before name it
/// `email`, those after `mail`. Columns are found by their Iceberg field id, so a job on
/// `mail` finds the subject in both files, rewrites and commits them, and purges what
/// held her: pyiceberg reads the table without her, under the new name.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_match_column_renamed_in_the_tables_history_is_found_by_field_id_and_erased(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
    ];
    let second = vec![
        json!({"id": 3, "mail": "ann@example.com", "country": "us", "ts": "2026-01-02T23:59:59"}),
        json!({"id": 4, "mail": "cyd@example.com", "country": "us", "ts": "2026-01-03T09:16:00"}),
    ];
    let spec = Spec::new("renamed", &PEOPLE)
        .append(first.clone())
        .rename_after(0, "email", "mail")
        .append(second.clone());
    let table = make_table(&lake, &spec);
    assert_eq!(table.current().files.len(), 2, "{:?}", table.current());
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": table.name},
        "format": "parquet",
        "columns": ["mail"],
    });
    let r = lake.app.put("/v1/data_mappers/renamed", body).await;
    assert!(r.status.is_success(), "{}", r.body);
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;

    let job = lake.run_job(&["renamed"]).await;
    let stats = &job["stats"];
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        stats["objects_rewritten"], 2,
        "both files, before and after: {job}"
    );
    assert_eq!(stats["rows_removed"], 2, "{job}");
    assert_eq!(stats["objects_verified"], 2, "{job}");
    let committed = crate::e2e_csv::messages(&lake, &job, "table_committed").await;
    assert_eq!(committed.len(), 1, "{committed:?}");

    let mut without: Vec<Value> = first
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let email = r.as_object_mut().unwrap().remove("email").unwrap();
            r["mail"] = email;
            r
        })
        .chain(second)
        .filter(|r| r["mail"] != "ann@example.com")
        .collect();
    without = by_id(without);
    assert_eq!(by_id(table.read()), without);
    assert_eq!(
        versions_holding(&lake, &table, "ann@example.com").await,
        Vec::<String>::new()
    );
    let account = lake.account(&job, &ann).await;
    assert_eq!(account["status"], "erased", "{account}");
    assert!(lake.queued().await.is_empty());
}

/// The bytes of an `s3://` object of the lake.
async fn s3_bytes(lake: &Lake, location: &str) -> Vec<u8> {
    crate::e2e_jobs::object_bytes(&lake.s3, &lake.bucket, IcebergTable::key(location))
        .await
        .to_vec()
}

/// Each current data file holding `subject` in `email`, rewritten by Lethe's exact
/// Parquet rewrite and uploaded under a new name, with its metrics.
async fn rewrite_current_files(
    lake: &Lake,
    table: &IcebergTable,
    metadata: &lethe::lakefile::iceberg::TableMetadata,
    subject: &str,
) -> std::collections::BTreeMap<String, lethe::lakefile::iceberg::commit::Replacement> {
    use lethe::lakefile::format::{Matching, Records};
    use lethe::lakefile::iceberg::commit::Replacement;
    use parquet::file::reader::FileReader;
    let dir = tempfile::tempdir().unwrap();
    let ids = lethe::lakefile::match_set::MatchSet::from_values(&[json!(subject)]);
    let columns = vec!["email".to_owned()];
    let mut replaced = std::collections::BTreeMap::new();
    for file in &table.current().files {
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::write(&src, s3_bytes(lake, file).await).unwrap();
        let m = Matching {
            columns: &columns,
            ids: &ids,
            every_row: false,
            max_record: 1 << 20,
            field_ids: None,
            drop_rows: &[],
        };
        let out = std::fs::File::create(&dst).unwrap();
        let r = Records::Parquet
            .rewrite(file, &src, (out, &dst), m)
            .unwrap();
        if r.records_removed == 0 {
            continue;
        }
        let new_path = file.replace(".parquet", "-lethe.parquet");
        let bytes = std::fs::read(&dst).unwrap();
        lake.put(IcebergTable::key(&new_path), &bytes).await;
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            std::fs::File::open(&dst).unwrap(),
        )
        .unwrap();
        let schema = metadata.schemas.last().unwrap();
        let metrics = lethe::lakefile::iceberg::metrics::data_file_metrics(
            reader.metadata(),
            bytes.len() as u64,
            schema,
            &metadata.properties,
        )
        .unwrap();
        let replacement = Replacement {
            new_path: Some(new_path),
            record_count: (r.records_before - r.records_removed) as i64,
            file_size: bytes.len() as i64,
            metrics: Some(metrics),
        };
        replaced.insert(file.clone(), replacement);
    }
    replaced
}

/// The commit path against moto's Glue and S3, driven through Lethe's library (no job
/// commits yet): Lethe rewrites the current data files holding the subject to new names,
/// builds the copy-on-write snapshot from the table's files, uploads it and moves the
/// Glue entry. pyiceberg, loading the table through Glue, reads the rows without hers and
/// the snapshot before as it was; a commit built from the old metadata is refused as
/// moved; and Lethe's own search still finds her in the old data files the older
/// snapshots reference (she is not erased until they are expired).
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_copy_on_write_snapshot_committed_through_glue_reads_without_the_subject(
    db: sqlx::PgPool,
) {
    use lethe::lakefile::iceberg::commit::{Current, NewSnapshot, overwrite};
    use lethe::lakefile::iceberg::{TableMetadata, manifest_list};
    let lake = lake(db).await;
    let (table, first, second) = people_with_ann(&lake);
    let expected = table.metadata_location.clone();
    let metadata_bytes = s3_bytes(&lake, &expected).await;
    let metadata: Value = serde_json::from_slice(&metadata_bytes).unwrap();
    let parsed = TableMetadata::parse(&metadata_bytes).unwrap();
    let list = s3_bytes(&lake, &table.current().manifest_list).await;
    let mut manifests = std::collections::BTreeMap::new();
    for m in manifest_list(&list).unwrap() {
        let bytes = s3_bytes(&lake, &m.path).await;
        manifests.insert(m.path, bytes);
    }
    let replaced = rewrite_current_files(&lake, &table, &parsed, "ann@example.com").await;
    assert_eq!(replaced.len(), 2, "her two files of `de`");
    let current = Current {
        metadata: &metadata,
        metadata_location: &expected,
        manifest_list: &list,
        manifests: &manifests,
    };
    let new = NewSnapshot {
        snapshot_id: 6_000_000_000_000_000_007,
        timestamp_ms: metadata["last-updated-ms"].as_i64().unwrap() + 1,
        uuid: "5e7a1c3b-2222-4333-8444-955566667777".into(),
        properties: Vec::new(),
    };
    let commit = overwrite(&current, &replaced, &new).unwrap();
    for (location, bytes) in &commit.files {
        lake.put(IcebergTable::key(location), bytes).await;
    }
    lake.put(
        IcebergTable::key(&commit.metadata_location),
        &commit.metadata,
    )
    .await;
    let catalog = &lake.app.state.catalog;
    let moved = (&expected, commit.metadata_location.as_str());
    catalog
        .commit_iceberg(&lake.database, "people", (moved.0, moved.1))
        .await
        .unwrap();

    let without = without_ann(&[&first, &second]);
    assert_eq!(by_id(table.read()), without);
    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    assert_eq!(by_id(table.read_at(table.current().id).unwrap()), all);
    // A commit built from the metadata before is refused: the entry moved.
    let again = catalog
        .commit_iceberg(
            &lake.database,
            "people",
            (&expected, "s3://x/y.metadata.json"),
        )
        .await;
    assert!(
        matches!(again, Err(lethe::catalog::CommitError::Moved { current: Some(ref now) }) if *now == commit.metadata_location),
        "{again:?}"
    );

    // Her rows are still in the data files the older snapshots reference: found.
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;
    let r = lake
        .app
        .post(
            "/v1/jobs",
            Some(json!({"dry_run": true, "data_mappers": ["people"]})),
        )
        .await;
    let job = json!({"job_id": r.body["job_id"]});
    lake.app.worker("w").run_until_idle().await.unwrap();
    let objects = lake.objects(&job).await;
    let mut matched: Vec<&str> = objects.keys().map(String::as_str).collect();
    matched.sort();
    let mut old: Vec<&str> = replaced.keys().map(|f| IcebergTable::key(f)).collect();
    old.sort();
    assert_eq!(matched, old, "the old files, not their rewrites");
}

/// Real Glue refuses an `UpdateTable` whose `VersionId` another commit made stale, which
/// moto never does: a proxy answers it `ConcurrentModificationException`. The commit is
/// then "moved" (the caller plans again), and the table's entry is as it was.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_glue_commit_refused_for_a_concurrent_modification_is_moved_and_changes_nothing(
    db: sqlx::PgPool,
) {
    use crate::e2e_throttle::{Fault, Rule, faulty_proxy, through};
    use axum::http::{HeaderMap, Method, Uri};
    use lethe::catalog::{Catalog, CommitError};
    let lake = lake(db).await;
    let spec = Spec::new("raced", &PEOPLE).append(vec![person(
        1,
        "ann@example.com",
        "de",
        "2026-01-01T10:00:00",
    )]);
    let table = make_table(&lake, &spec);
    let rule: std::sync::Arc<Rule> = std::sync::Arc::new(|_: &Method, _: &Uri, h: &HeaderMap| {
        let target = h.get("x-amz-target").and_then(|v| v.to_str().ok());
        (target == Some("AWSGlue.UpdateTable")).then_some(Fault::GlueConcurrent)
    });
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let aws = through(faulty_proxy(moto, rule).await, 1);
    let catalog = lethe::catalog::glue::GlueCatalog::new(&lethe::aws::sdk_config(&aws).await);
    let locations = (
        table.metadata_location.as_str(),
        "s3://x/t/metadata/9.metadata.json",
    );
    let result = catalog
        .commit_iceberg(&lake.database, "raced", locations)
        .await;
    assert!(
        matches!(result, Err(CommitError::Moved { current: None })),
        "{result:?}"
    );
    let def = lake
        .app
        .state
        .catalog
        .get_table(&lake.database, "raced")
        .await
        .unwrap();
    assert_eq!(
        def.metadata_location(),
        Some(table.metadata_location.as_str())
    );
}

/// A data file the metadata references but S3 no longer shows as current (deleted behind
/// Lethe's back, or named in the manifest otherwise than its key) is never taken for "no
/// match": the mapper fails find and the subject stays queued.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_referenced_data_file_the_listing_does_not_show_fails_find(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let (table, _, _) = people_with_ann(&lake);
    let gone = table.current().files[0].clone();
    lake.s3
        .delete_object()
        .bucket(&lake.bucket)
        .key(IcebergTable::key(&gone))
        .send()
        .await
        .unwrap();
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;
    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let failed = crate::e2e_csv::messages(&lake, &job, "mapper_failed").await;
    assert!(
        failed.iter().any(|m| m.contains("1 of the 3 data file(s)")),
        "{failed:?}"
    );
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
}

/// Every version of every object under the table's location that holds `needle`: data
/// files read as Parquet (every column's values), manifests and manifest lists as Avro
/// (every string, bytes and fixed value: column bounds among them), anything else as
/// bytes.
pub(crate) async fn versions_holding(
    lake: &Lake,
    table: &IcebergTable,
    needle: &str,
) -> Vec<String> {
    let prefix = format!("{}/", IcebergTable::key(&table.location));
    let out = lake
        .s3
        .list_object_versions()
        .bucket(&lake.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    assert!(
        !out.is_truncated().unwrap_or(false),
        "one page lists them all"
    );
    let mut holding = Vec::new();
    for v in out.versions() {
        let (key, version) = (v.key().unwrap(), v.version_id().unwrap());
        let bytes = lake
            .s3
            .get_object()
            .bucket(&lake.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        if holds(key, &bytes, needle) {
            holding.push(format!("{key}@{version}"));
        }
    }
    holding
}

/// Whether an object's bytes hold `needle` (see [`versions_holding`]).
fn holds(key: &str, bytes: &[u8], needle: &str) -> bool {
    use lethe::lakefile::avro::datum::{Datum, read_all};
    fn walk(d: &Datum, needle: &[u8]) -> bool {
        let within = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        match d {
            Datum::Bytes(b) | Datum::Fixed(b) => within(b),
            Datum::String(s) | Datum::Enum(s) => within(s.as_bytes()),
            Datum::Record(fields) | Datum::Map(fields) => fields
                .iter()
                .any(|(k, v)| within(k.as_bytes()) || walk(v, needle)),
            Datum::Array(items) => items.iter().any(|v| walk(v, needle)),
            _ => false,
        }
    }
    let raw = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    if key.ends_with(".parquet") {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::copy_from_slice(bytes),
            1024,
        )
        .unwrap();
        let values = reader.flat_map(|b| {
            let b = b.unwrap();
            let mut found = Vec::new();
            for column in b.columns() {
                let text = arrow_cast::display::ArrayFormatter::try_new(
                    column.as_ref(),
                    &Default::default(),
                )
                .unwrap();
                for i in 0..column.len() {
                    found.push(text.value(i).to_string());
                }
            }
            found
        });
        return raw || values.into_iter().any(|v| v.contains(needle));
    }
    if key.ends_with(".avro") {
        let read = read_all(bytes, 1 << 30).unwrap();
        return raw || read.records.iter().any(|r| walk(r, needle.as_bytes()));
    }
    raw
}

/// The whole erasure from an Iceberg table, through the job API: forget rewrites the two
/// data files holding the subject to new files, one snapshot (`overwrite`) commits them
/// through Glue, verify re-reads them, and the purge expires the snapshots that still
/// held the old files and deletes every version of those files, of the manifests and
/// manifest lists only they used and of the old metadata files. pyiceberg then reads the
/// table without her and every other row intact, time travel to an expired snapshot
/// fails, and no version of any object under the table's location holds her.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_iceberg_job_commits_a_snapshot_without_the_subject_and_purges_what_held_her(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let (table, first, second) = people_with_ann(&lake);
    let old_snapshots: Vec<i64> = table.snapshots.iter().map(|s| s.id).collect();
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    let nobody = json!("nobody@example.com");
    crate::e2e_csv::queue_ids(&lake, &[ann.clone(), nobody.clone()]).await;
    assert!(
        !versions_holding(&lake, &table, "ann@example.com")
            .await
            .is_empty()
    );

    let job = lake.run_job(&["people"]).await;
    let erased = Erased {
        table: &table,
        without: without_ann(&[&first, &second]),
        old_snapshots: &old_snapshots,
    };
    erased.check(&lake, &job, &ann).await;
    assert_eq!(job["stats"]["objects_verified"], 2, "{job}");
    let committed = crate::e2e_csv::messages(&lake, &job, "table_committed").await;
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert!(
        !versions_holding(&lake, &table, "bob@example.com")
            .await
            .is_empty(),
        "the other rows are still there"
    );
    // The report names the snapshots before and after, those expired, the files deleted.
    let report = lake.report(&job).await;
    let t = &report["tables"][0];
    assert_eq!(t["data_mapper_id"], "people", "{report}");
    assert_eq!(t["snapshot_before"], json!(old_snapshots[1]), "{t}");
    assert_eq!(t["purge"]["step"], "done", "{t}");
    let mut expired: Vec<i64> = serde_json::from_value(t["purge"]["expired"].clone()).unwrap();
    expired.sort();
    let mut old = old_snapshots.clone();
    old.sort();
    assert_eq!(expired, old, "{t}");
    assert!(
        t["snapshot_after"]
            .as_i64()
            .is_some_and(|s| !old.contains(&s)),
        "{t}"
    );
    let account = lake.account(&job, &nobody).await;
    assert_eq!(account["status"], "not_found", "{account}");
    assert!(lake.queued().await.is_empty());
}

/// A table the job erased the subject from: her two data files (of two snapshots)
/// rewritten, and the table's old snapshots expired.
struct Erased<'a> {
    table: &'a IcebergTable,
    /// The source's rows without hers, by id.
    without: Vec<Value>,
    old_snapshots: &'a [i64],
}

impl Erased<'_> {
    /// The job completed, its two rewrites committed and the old snapshots expired;
    /// pyiceberg and DuckDB read the current snapshot without her rows and every other
    /// row intact, time travel to an old snapshot fails, no version of any object under
    /// the table's location holds her, and she is `erased`.
    async fn check(&self, lake: &Lake, job: &Value, subject: &Value) {
        let (table, stats) = (self.table, &job["stats"]);
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(stats["objects_rewritten"], 2, "{job}");
        assert_eq!(stats["rows_removed"], 2, "{job}");
        let purged = crate::e2e_csv::messages(lake, job, "table_purged").await;
        assert!(
            purged[0].contains("2 snapshot(s) expired, 0 kept"),
            "{purged:?}"
        );
        assert_eq!(by_id(table.read()), self.without);
        let columns =
            |r: &Value| json!({"id": r["id"], "email": r["email"], "country": r["country"]});
        let expected: Vec<Value> = self.without.iter().map(columns).collect();
        assert_eq!(
            table.read_with_duckdb(lake).await,
            expected,
            "DuckDB reads it too"
        );
        for id in self.old_snapshots {
            let at = table.read_at(*id);
            assert!(at.is_err(), "snapshot {id} expired: {at:?}");
        }
        let needle = subject.as_str().unwrap();
        assert_eq!(
            versions_holding(lake, table, needle).await,
            Vec::<String>::new()
        );
        let account = lake.account(job, subject).await;
        assert_eq!(account["status"], "erased", "{account}");
    }
}

/// Runs the job's tasks one by one until forget has rewritten `forgets` objects (the
/// forget barrier: the commit comes next).
pub(crate) async fn run_forgets(lake: &Lake, forgets: usize) {
    run_until(lake, "forget.object", forgets).await;
}

/// Runs the job's tasks one by one until `n` tasks of `kind` have run.
async fn run_until(lake: &Lake, kind: &str, n: usize) {
    let worker = lake.app.worker("w");
    let mut done = 0;
    while done < n {
        let (task, result) = worker.run_once().await.unwrap().expect("a task to run");
        assert!(result.is_ok(), "{}: {result:?}", task.kind);
        done += usize::from(task.kind == kind);
    }
}

/// Starts a real job over `people` (its tasks left for the test to run).
pub(crate) async fn start_job(lake: &Lake) -> Value {
    let body = json!({"data_mappers": ["people"]});
    let r = lake.app.post("/v1/jobs", Some(body)).await;
    json!({"job_id": r.body["job_id"]})
}

/// Another writer appends between Lethe's find (and forget) and its commit: Lethe reads
/// the table again, searches the data file it did not see (no subject there), and
/// commits its snapshot on top of the append, whose rows stay.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_concurrent_append_is_kept_and_lethes_snapshot_comes_after_it(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let (table, first, second, ann) = ann_queued(&lake).await;
    let job = start_job(&lake).await;
    run_forgets(&lake, 2).await;
    let appended = vec![person(5, "dan@example.com", "de", "2026-01-04T08:00:00")];
    let raced = table.append(appended.clone());
    lake.app.worker("w").run_until_idle().await.unwrap();

    let report = lake.report(&job).await;
    assert_eq!(report["job"]["status"], "completed", "{report}");
    let moved = crate::e2e_csv::messages(&lake, &job, "table_committed").await;
    assert!(
        moved[0].contains(&format!("parent snapshot {}", raced.current().id)),
        "{moved:?}"
    );
    let expected = without_ann(&[&first, &second, &appended]);
    assert_eq!(by_id(table.read()), expected);
    assert_eq!(lake.account(&job, &ann).await["status"], "erased");
    assert_eq!(
        versions_holding(&lake, &table, "ann@example.com").await,
        Vec::<String>::new()
    );
}

/// Another writer appends the subject's rows again between find and commit: Lethe finds
/// them in the data file it did not search, refuses the commit (its new files deleted,
/// nothing of the table changed) and keeps the subject queued.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_concurrent_append_of_the_subject_refuses_the_commit_and_keeps_her_queued(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let (table, first, second, ann) = ann_queued(&lake).await;
    let job = start_job(&lake).await;
    run_forgets(&lake, 2).await;
    let again = vec![person(6, "ann@example.com", "fr", "2026-01-05T08:00:00")];
    table.append(again.clone());
    let mut before = etags(&lake, &table).await;
    let new_files = before.keys().filter(|k| k.contains("-lethe-")).count();
    assert_eq!(new_files, 2, "forget wrote the two rewrites: {before:?}");
    before.retain(|k, _| !k.contains("-lethe-"));
    lake.app.worker("w").run_until_idle().await.unwrap();

    let report = lake.report(&job).await;
    assert_ne!(report["job"]["status"], "completed", "{report}");
    let refused = crate::e2e_csv::messages(&lake, &job, "table_commit_refused").await;
    assert!(
        refused[0].contains("hold the job's subjects"),
        "{refused:?}"
    );
    assert_eq!(
        etags(&lake, &table).await,
        before,
        "the new data files are deleted, nothing else written"
    );
    let all: Vec<Value> = first.iter().chain(&second).chain(&again).cloned().collect();
    assert_eq!(by_id(table.read()), by_id(all));
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
    assert_eq!(lake.account(&job, &ann).await["status"], "kept");
}

/// A tag keeps an old snapshot holding the subject: the commit removes her from the
/// current snapshot, but nothing is expired or deleted, and her account is `kept` with
/// the tag named; time travel to the tag still reads her rows.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_tag_on_an_old_snapshot_keeps_the_subject_and_expires_nothing(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
    ];
    let second = vec![person(3, "cyd@example.com", "de", "2026-01-03T09:16:00")];
    let spec = Spec::new("tagged", &PEOPLE)
        .append(first.clone())
        .append(second.clone())
        .tag("audit-2026", 0);
    let table = make_table(&lake, &spec);
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;

    let job = lake.run_job(&["tagged"]).await;
    assert_eq!(job["stats"]["objects_verified"], 1, "{job}");
    let purged = crate::e2e_csv::messages(&lake, &job, "table_purged").await;
    assert!(
        purged[0].contains("0 snapshot(s) expired, 1 kept by a tag or branch, 0 tag(s) or branch(es) removed; 0 file(s)"),
        "{purged:?}"
    );
    let without = without_ann(&[&first, &second]);
    assert_eq!(by_id(table.read()), without);
    for s in &table.snapshots {
        assert!(table.read_at(s.id).is_ok(), "snapshot {} kept", s.id);
    }
    let account = lake.account(&job, &ann).await;
    assert_eq!(account["status"], "kept", "{account}");
    let reason = account["accounts"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("tag audit-2026"), "{account}");
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
}

/// The worker purging the table dies right after its first delete: the rerun resumes
/// from the recorded step (the metadata already committed), deletes the rest, accounts
/// for every version deleted, and deletes nothing the table references.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_crash_in_the_purge_resumes_and_completes_the_chain(db: sqlx::PgPool) {
    let stores = crate::e2e_jobs::killed_during_purge(&db);
    let lake = crate::e2e_find::lake_with(db.clone(), stores).await;
    let (table, first, second, ann) = ann_queued(&lake).await;

    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let purged = crate::e2e_csv::messages(&lake, &job, "table_purged").await;
    assert_eq!(purged.len(), 1, "recorded once: {purged:?}");
    let without = without_ann(&[&first, &second]);
    assert_eq!(
        by_id(table.read()),
        without,
        "the table reads after the resume"
    );
    assert_eq!(
        versions_holding(&lake, &table, "ann@example.com").await,
        Vec::<String>::new()
    );
    let report = lake.report(&job).await;
    let objects = report["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{report}");
    for o in objects {
        let deleted = o["versions_deleted"].as_array().map_or(0, Vec::len);
        assert_eq!(deleted, 1, "its deleted version is accounted: {o}");
        // A file whose every row was hers leaves the table without a rewrite.
        match o["rows_after"].as_i64() {
            Some(0) => assert!(o["key_after"].is_null() && o["version_id_after"].is_null()),
            _ => assert!(o["key_after"].as_str().unwrap().contains("-lethe-"), "{o}"),
        }
    }
    assert_eq!(lake.account(&job, &ann).await["status"], "erased");
}

/// A mapper that allows it (`expire_tagged_snapshots`) lets the purge expire a snapshot a
/// tag keeps, removing the tag: the subject is erased and the tag is gone.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_mapper_may_let_the_purge_expire_a_tagged_snapshot(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
    ];
    let spec = Spec::new("tagged", &PEOPLE)
        .append(first.clone())
        .append(vec![person(
            3,
            "cyd@example.com",
            "de",
            "2026-01-03T09:16:00",
        )])
        .tag("audit-2026", 0);
    let table = make_table(&lake, &spec);
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": table.name},
        "format": "parquet",
        "columns": ["email"],
        "expire_tagged_snapshots": true,
    });
    let r = lake.app.put("/v1/data_mappers/tagged", body).await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(r.body["expire_tagged_snapshots"], true, "{}", r.body);
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;

    let job = lake.run_job(&["tagged"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let purged = crate::e2e_csv::messages(&lake, &job, "table_purged").await;
    assert!(
        purged[0].contains(
            "2 snapshot(s) expired, 0 kept by a tag or branch, 1 tag(s) or branch(es) removed"
        ),
        "{purged:?}"
    );
    assert!(
        table.read_at(table.snapshots[0].id).is_err(),
        "the tagged snapshot expired"
    );
    assert_eq!(lake.account(&job, &ann).await["status"], "erased");
    assert_eq!(
        versions_holding(&lake, &table, "ann@example.com").await,
        Vec::<String>::new()
    );
}

/// An unpartitioned table and one partitioned by `day(ts)`: the same job erases the
/// subject from each, and pyiceberg reads every other row as it was.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn unpartitioned_and_day_partitioned_tables_are_erased_too(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-01T11:30:00"),
    ];
    let second = vec![
        person(3, "ann@example.com", "de", "2026-01-03T09:15:00"),
        person(4, "cyd@example.com", "de", "2026-01-03T09:16:00"),
    ];
    let plain = Spec::new("plain", &PEOPLE)
        .append(first.clone())
        .append(second.clone());
    let by_day = Spec::new("by_day", &PEOPLE)
        .partition("ts", "day")
        .append(first.clone())
        .append(second.clone());
    let tables = [make_table(&lake, &plain), make_table(&lake, &by_day)];
    for table in &tables {
        iceberg_mapper(&lake, table).await;
    }
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;

    let job = lake.run_job(&["plain", "by_day"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["rows_removed"], 4, "{job}");
    for table in &tables {
        assert_eq!(by_id(table.read()), without_ann(&[&first, &second]));
        assert_eq!(
            versions_holding(&lake, table, "ann@example.com").await,
            Vec::<String>::new(),
            "{}",
            table.name
        );
    }
    let account = lake.account(&job, &ann).await;
    assert_eq!(account["status"], "erased", "{account}");
}

/// A table with an equality delete file (here one of its manifest's entries turned into
/// one, as Flink or Spark merge-on-read writers make them): find refuses the table with
/// the reason before anything is searched, nothing is written and the subject stays
/// queued.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_table_with_an_equality_delete_file_is_refused_and_nothing_is_written(db: sqlx::PgPool) {
    use lethe::lakefile::avro::datum::{Datum, read_all};
    use lethe::lakefile::avro::write::write_container;
    use lethe::lakefile::iceberg::manifest_list;
    let lake = lake(db).await;
    let (table, _, _, ann) = ann_queued(&lake).await;
    let list = s3_bytes(&lake, &table.current().manifest_list).await;
    let manifest = manifest_list(&list).unwrap().remove(0).path;
    let read = read_all(&s3_bytes(&lake, &manifest).await, 1 << 30).unwrap();
    let mut records = read.records.clone();
    let Datum::Record(entry) = &mut records[0] else {
        panic!("a manifest entry is a record")
    };
    let (_, Datum::Record(file)) = entry.iter_mut().find(|(n, _)| n == "data_file").unwrap() else {
        panic!("data_file is a record")
    };
    let (_, content) = file.iter_mut().find(|(n, _)| n == "content").unwrap();
    *content = Datum::Long(2);
    let bytes = write_container(&read.metadata, &records, [7; 16]).unwrap();
    lake.put(IcebergTable::key(&manifest), &bytes).await;
    let before = etags(&lake, &table).await;

    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let failed = crate::e2e_csv::messages(&lake, &job, "mapper_failed").await;
    assert!(
        failed.iter().any(|m| m.contains("equality delete files")),
        "{failed:?}"
    );
    assert_eq!(etags(&lake, &table).await, before, "nothing written");
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
}

/// A writer that read the table before Lethe's commit appends her rows again after it,
/// before the purge: the purge searches the data file it did not see, finds her, and her
/// account is `kept` (the next job erases her); the old snapshots still expire.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn rows_appended_again_after_the_commit_keep_the_subject_queued(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let (table, _, _, ann) = ann_queued(&lake).await;
    let job = start_job(&lake).await;
    let worker = lake.app.worker("w");
    loop {
        let (task, result) = worker.run_once().await.unwrap().expect("a task to run");
        assert!(result.is_ok(), "{}: {result:?}", task.kind);
        if task.kind == "commit.table" {
            break;
        }
    }
    table.append(vec![person(
        7,
        "ann@example.com",
        "fr",
        "2026-01-06T08:00:00",
    )]);
    worker.run_until_idle().await.unwrap();

    let report = lake.report(&job).await;
    assert_eq!(
        report["tables"][0]["purge"]["newer_holds"], true,
        "{report}"
    );
    let account = lake.account(&job, &ann).await;
    assert_eq!(account["status"], "kept", "{account}");
    assert!(
        account["accounts"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(lethe::jobs::finalize::NEWER_HOLDS)),
        "{account}"
    );
    assert_eq!(lake.queued().await, std::slice::from_ref(&ann));
}

/// The metadata the table's Glue entry names now.
async fn current_metadata(lake: &Lake, table: &IcebergTable) -> Value {
    let location = table.metadata_location_now(lake).await;
    serde_json::from_slice(&s3_bytes(lake, &location).await).unwrap()
}

/// A format version 1 table (pyiceberg's `format-version` property), partitioned, two
/// appends, the subject in a data file of each: the job commits Lethe's snapshot and
/// expires the old ones in version 1's files (no sequence number anywhere), so the table
/// stays version 1; pyiceberg and DuckDB read it without her and every other row intact,
/// time travel to an expired snapshot fails, and no version of any object under its
/// location holds her.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_format_version_1_table_is_erased_and_stays_version_1(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let first = vec![
        person(1, "ann@example.com", "de", "2026-01-01T10:00:00"),
        person(2, "bob@example.com", "fr", "2026-01-02T11:30:00"),
        json!({"id": 5, "email": null, "country": "us", "ts": null}),
    ];
    let second = vec![
        person(3, "ann@example.com", "de", "2026-01-03T09:15:00"),
        person(4, "cyd@example.com", "de", "2026-01-03T09:16:00"),
    ];
    let spec = Spec::new("legacy", &PEOPLE)
        .format_version(1)
        .partition("country", "identity")
        .append(first.clone())
        .append(second.clone());
    let table = make_table(&lake, &spec);
    assert_eq!(table.format_version, 1);
    let before = current_metadata(&lake, &table).await;
    assert!(before.get("last-sequence-number").is_none(), "{before}");
    assert!(before["schema"].is_object(), "the legacy schema: {before}");
    let old_snapshots: Vec<i64> = table.snapshots.iter().map(|s| s.id).collect();
    iceberg_mapper(&lake, &table).await;
    let ann = json!("ann@example.com");
    crate::e2e_csv::queue_ids(&lake, std::slice::from_ref(&ann)).await;

    let job = lake.run_job(&["legacy"]).await;
    let erased = Erased {
        table: &table,
        without: without_ann(&[&first, &second]),
        old_snapshots: &old_snapshots,
    };
    erased.check(&lake, &job, &ann).await;

    // Still version 1: the metadata, and every manifest and manifest list it holds.
    let after = current_metadata(&lake, &table).await;
    assert_eq!(after["format-version"], 1, "{after}");
    assert!(after.get("last-sequence-number").is_none(), "{after}");
    let snapshots = after["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1, "{after}");
    assert!(snapshots[0].get("sequence-number").is_none(), "{after}");
    assert_eq!(after["schema"], before["schema"], "the legacy schema kept");
    for key in keys(&lake, &table).await {
        if !key.ends_with(".avro") {
            continue;
        }
        let bytes = crate::e2e_jobs::object_bytes(&lake.s3, &lake.bucket, &key).await;
        let read = lethe::lakefile::avro::datum::read_all(&bytes, 1 << 24).unwrap();
        assert_eq!(read.metadata_text("format-version"), Some("1"), "{key}");
    }
}
