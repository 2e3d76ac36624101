//! A dry-run job end to end against moto: Glue tables with partitions, a versioned S3
//! bucket, the real aws-sdk-glue and aws-sdk-s3, through the REST API. The report must
//! equal what plain Rust computes from the generated rows.

use std::sync::Arc;

use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, StorageClass, VersioningConfiguration};
use axum::http::StatusCode;
use lethe::catalog::glue::GlueCatalog;
use lethe::storage::Stores;
use serde_json::json;
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_storage::new_bucket;
use crate::jobs::{
    events_matches, expected_events, expected_people, full_matrix, queue, start_dry_run,
};
use crate::lake;

fn descriptor(location: String, columns: &[(&str, &str)], json: bool) -> StorageDescriptor {
    let (input, serde) = if json {
        (
            "org.apache.hadoop.mapred.TextInputFormat",
            "org.openx.data.jsonserde.JsonSerDe",
        )
    } else {
        (
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        )
    };
    let mut sd = StorageDescriptor::builder()
        .location(location)
        .input_format(input)
        .serde_info(SerDeInfo::builder().serialization_library(serde).build());
    for (name, ty) in columns {
        sd = sd.columns(Column::builder().name(*name).r#type(*ty).build().unwrap());
    }
    sd.build()
}

/// Creates a partitioned table and its partitions (one per value of its one key).
async fn glue_table(
    glue: &aws_sdk_glue::Client,
    database: &str,
    table: &str,
    location: &str,
    columns: &[(&str, &str)],
    (key, values): (&str, &[&str]),
    json: bool,
) {
    glue.create_table()
        .database_name(database)
        .table_input(
            TableInput::builder()
                .name(table)
                .storage_descriptor(descriptor(location.to_owned(), columns, json))
                .partition_keys(
                    Column::builder()
                        .name(key)
                        .r#type("string")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for value in values {
        glue.create_partition()
            .database_name(database)
            .table_name(table)
            .partition_input(
                PartitionInput::builder()
                    .values(*value)
                    .storage_descriptor(descriptor(
                        format!("{location}{key}={value}/"),
                        columns,
                        json,
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_dry_run_over_a_glue_lake_in_the_emulator_finds_exactly_the_generated_rows(db: PgPool) {
    let (sdk, s3, bucket) = new_bucket().await;
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let put = |key: String, body: Vec<u8>, class: Option<StorageClass>| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .set_storage_class(class)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap()
        }
    };
    let people = lake::people();
    for o in &people {
        put(format!("people/{}", o.key), o.bytes.clone(), None).await;
    }
    // A second version: find must read (and record) the current one.
    let current = put(
        format!("people/{}", people[0].key),
        people[0].bytes.clone(),
        None,
    )
    .await;
    put("people/country=fr/_SUCCESS".into(), vec![], None).await;
    put(
        "people/country=us/corrupt.parquet".into(),
        b"not parquet at all".to_vec(),
        None,
    )
    .await;
    put(
        "people/country=us/archived.parquet".into(),
        people[5].bytes.clone(),
        Some(StorageClass::Glacier),
    )
    .await;
    for (key, _, bytes) in lake::events() {
        put(format!("events/{key}"), bytes, None).await;
    }

    let glue = aws_sdk_glue::Client::new(&sdk);
    let database = format!("lake_{}", uuid::Uuid::new_v4().simple());
    glue.create_database()
        .database_input(DatabaseInput::builder().name(&database).build().unwrap())
        .send()
        .await
        .unwrap();
    glue_table(
        &glue,
        &database,
        "people",
        &format!("s3://{bucket}/people/"),
        &[
            ("id", "bigint"),
            ("email", "string"),
            ("name", "string"),
            ("account", "decimal(12,2)"),
            ("contact", "struct<email:string,phone:string>"),
        ],
        ("country", &lake::COUNTRIES),
        false,
    )
    .await;
    glue_table(
        &glue,
        &database,
        "events",
        &format!("s3://{bucket}/events/"),
        &[
            ("user", "struct<id:bigint,email:string>"),
            ("kind", "string"),
        ],
        ("dt", &["2026-11-00", "2026-11-01"]),
        true,
    )
    .await;

    let app = TestApp::with_stores(
        db,
        Arc::new(GlueCatalog::new(&sdk)),
        Stores::new(&sdk, true),
    );
    for (id, table, columns, keys) in [
        (
            "people",
            "people",
            json!(["id", "email", "account", "contact.email"]),
            json!(["country"]),
        ),
        (
            "events",
            "events",
            json!(["user.id", "user.email"]),
            json!([]),
        ),
    ] {
        let body = json!({
            "catalog": {"provider": "glue", "database": database, "table": table},
            "format": if id == "events" { "json" } else { "parquet" },
            "columns": columns,
            "partition_keys": keys,
        });
        let r = app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let (items, matches) = full_matrix();
    queue(&app, items).await;
    let job = start_dry_run(&app, &[]).await;
    app.worker("w").run_until_idle().await.unwrap();

    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "completed", "{}", got.body);
    let mut expected = expected_people(&matches, "people/");
    expected.extend(expected_events(&events_matches(), "events/"));
    // The report lists matched objects; the corrupt one is reported as failed.
    let objects = app
        .get(&format!("/v1/jobs/{job}/objects?page_size=1000"))
        .await;
    let all = objects.body["objects"].as_array().unwrap().clone();
    let failed: Vec<_> = all.iter().filter(|o| o["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["key"], "people/country=us/corrupt.parquet");
    assert!(failed[0]["error"].as_str().unwrap().contains("Parquet"));
    let matched: std::collections::BTreeMap<String, i64> = all
        .iter()
        .filter(|o| o["status"] == "matched")
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["rows_matched"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(matched, expected);
    // The version find read is the current one, as S3 reports it.
    let first = all
        .iter()
        .find(|o| o["key"] == format!("people/{}", people[0].key))
        .expect("the first object holds id 5");
    assert_eq!(first["version_id"], current.version_id().unwrap());
    assert_eq!(first["etag"], current.e_tag().unwrap());
    assert_eq!(first["bucket"], bucket.as_str());

    let stats = &got.body["stats"];
    assert_eq!(stats["partitions_listed"], 3 + 2);
    assert_eq!(stats["objects_listed"], 6 + 3 + 2);
    assert_eq!(stats["objects_skipped"], 2, "marker and archived object");
    assert_eq!(stats["objects_failed"], 1);
    assert_eq!(stats["objects_scanned"], 6 + 2);
    assert_eq!(stats["objects_matched"], expected.len() as i64);
    assert_eq!(stats["rows_matched"], expected.values().sum::<i64>());
    let events = app
        .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
        .await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "job_created",
        "find_started",
        "mapper_listed",
        "object_skipped",
        "object_failed",
        "find_finished",
        "job_finished",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // No match id appears in the events.
    let text = events.body.to_string();
    for id in ["user42@example.com", "c9001@example.com", "123456789"] {
        assert!(!text.contains(id), "events must not carry match ids");
    }

    // A table that vanished from the catalog fails its mapper, and the job.
    glue.delete_table()
        .database_name(&database)
        .name("events")
        .send()
        .await
        .unwrap();
    let job = start_dry_run(&app, &["events"]).await;
    app.worker("w").run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "find_failed", "{}", got.body);
    let events = app.get(&format!("/v1/jobs/{job}/events")).await;
    let failure = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "mapper_failed")
        .expect("a mapper_failed event")
        .clone();
    assert!(
        failure["message"].as_str().unwrap().contains("events"),
        "{failure}"
    );
}
