//! Find that cannot miss a subject, end to end against moto through the REST API: every
//! object of a Glue table is searched (partition projection, partitions the catalog does
//! not know, partitions outside the table location), partition values compare by their
//! key's type. After each job the lake is read back with an independent reader.

use std::sync::Arc;

use aws_sdk_glue::types::{Column, PartitionInput, TableInput};
use aws_sdk_s3::primitives::ByteStream;
use axum::http::StatusCode;
use lethe::catalog::glue::GlueCatalog;
use lethe::storage::Stores;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::e2e_jobs::{descriptor, glue_database, object_bytes, read_ids};
use crate::e2e_storage::{new_bucket, new_versioned_bucket};
use crate::jobs::queue;
use crate::lake;

/// A bucket, a Glue database in moto and an app over both.
pub struct Lake {
    pub app: TestApp,
    pub s3: aws_sdk_s3::Client,
    pub glue: aws_sdk_glue::Client,
    pub bucket: String,
    pub database: String,
}

pub async fn lake(db: sqlx::PgPool) -> Lake {
    lake_with(db, |sdk| Stores::new(sdk, true)).await
}

/// [`lake`] with the app's stores made by `stores` (a fault-injecting wrapper, say).
pub async fn lake_with(
    db: sqlx::PgPool,
    stores: impl FnOnce(&aws_config::SdkConfig) -> Stores,
) -> Lake {
    lake_in(db, new_versioned_bucket().await, stores).await
}

pub async fn lake_in(
    db: sqlx::PgPool,
    (sdk, s3, bucket): (aws_config::SdkConfig, aws_sdk_s3::Client, String),
    stores: impl FnOnce(&aws_config::SdkConfig) -> Stores,
) -> Lake {
    let glue = aws_sdk_glue::Client::new(&sdk);
    let database = glue_database(&glue, "find").await;
    let app = TestApp::with_stores(db, Arc::new(GlueCatalog::new(&sdk)), stores(&sdk));
    Lake {
        app,
        s3,
        glue,
        bucket,
        database,
    }
}

impl Lake {
    pub async fn put(&self, key: &str, body: &[u8]) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
    }

    /// A Parquet table of `people` columns with one partition key.
    pub async fn table(
        &self,
        name: &str,
        location: &str,
        key: (&str, &str),
        parameters: &[(&str, &str)],
    ) {
        let columns = [("id", "bigint"), ("email", "string")];
        self.table_of(name, location, &columns, false, key, parameters)
            .await;
    }

    /// A table of these columns (JSON Lines when `json`) with one partition key.
    async fn table_of(
        &self,
        name: &str,
        location: &str,
        columns: &[(&str, &str)],
        json: bool,
        key: (&str, &str),
        parameters: &[(&str, &str)],
    ) {
        let mut input = TableInput::builder()
            .name(name)
            .storage_descriptor(descriptor(location.to_owned(), columns, json))
            .partition_keys(Column::builder().name(key.0).r#type(key.1).build().unwrap());
        for (k, v) in parameters {
            input = input.parameters(*k, *v);
        }
        self.glue
            .create_table()
            .database_name(&self.database)
            .table_input(input.build().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// Registers a partition of `table` at `location` with the table's own storage
    /// descriptor (its columns, input format and SerDe), as Athena's `ADD PARTITION`
    /// and the crawler register one.
    pub async fn partition(&self, table: &str, value: &str, location: &str) {
        let got = self
            .glue
            .get_table()
            .database_name(&self.database)
            .name(table);
        let got = got.send().await.unwrap();
        let sd = got.table().and_then(|t| t.storage_descriptor()).unwrap();
        let mut sd = sd.clone();
        sd.location = Some(location.to_owned());
        self.glue
            .create_partition()
            .database_name(&self.database)
            .table_name(table)
            .partition_input(
                PartitionInput::builder()
                    .values(value)
                    .storage_descriptor(sd)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn mapper(&self, id: &str, table: &str, key: &str) {
        self.mapper_with(id, table, key, json!({})).await;
    }

    /// Creates or replaces a mapper, with `extra` fields.
    pub async fn mapper_with(&self, id: &str, table: &str, key: &str, extra: Value) {
        let mut body = json!({
            "catalog": {"provider": "glue", "database": self.database, "table": table},
            "format": "parquet",
            "columns": ["id", "email"],
            "partition_keys": [key],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert!(r.status.is_success(), "{}", r.body);
    }

    /// The job's report rows (objects), by key.
    pub async fn objects(&self, job: &Value) -> std::collections::BTreeMap<String, Value> {
        let id = job["job_id"].as_str().unwrap();
        let r = self
            .app
            .get(&format!("/v1/jobs/{id}/objects?page_size=1000"))
            .await;
        r.body["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["key"].as_str().unwrap().to_owned(), o.clone()))
            .collect()
    }

    /// The versions S3 holds of `key`.
    pub async fn versions(&self, key: &str) -> usize {
        let out = self
            .s3
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        out.versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .count()
    }

    /// Runs a real job over `mappers` to its end and returns it.
    pub async fn run_job(&self, mappers: &[&str]) -> Value {
        crate::e2e_jobs::run_job(&self.app, mappers).await
    }

    pub async fn event_kinds(&self, job: &Value) -> Vec<String> {
        let events = self
            .app
            .get(&format!(
                "/v1/jobs/{}/events?page_size=1000",
                job["job_id"].as_str().unwrap()
            ))
            .await;
        events.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The job's report (`GET /v1/jobs/{id}/report`).
    pub async fn report(&self, job: &Value) -> Value {
        let id = job["job_id"].as_str().unwrap();
        self.app.get(&format!("/v1/jobs/{id}/report")).await.body
    }

    /// The report's entry of queued match `id` (status, accounts), found by its keyed hash.
    pub async fn account(&self, job: &Value, id: &Value) -> Value {
        use lethe::domain::match_id::{MatchId, match_hash};
        use lethe::jobs::finalize::{REPORT_KEY, random_key};
        let mut conn = self.app.db.acquire().await.unwrap();
        let key = lethe::db::server_secret::get_or_create(&mut conn, REPORT_KEY, random_key)
            .await
            .unwrap();
        let report = self.report(job).await;
        report["matches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["match_hash"] == match_hash(&key, &MatchId::from_stored(id).unwrap()))
            .cloned()
            .unwrap_or_else(|| panic!("no account for {id}: {report}"))
    }

    /// The queue's items left (their match ids).
    pub async fn queued(&self) -> Vec<Value> {
        let r = self.app.get("/v1/queue?page_size=1000").await;
        assert!(
            r.status.is_success(),
            "GET /v1/queue: {} {}",
            r.status,
            r.body
        );
        r.body["matches"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /v1/queue: {}", r.body))
            .iter()
            .map(|m| m["match_id"].clone())
            .collect()
    }
}

/// The ids of `object`'s rows without `erased`.
pub fn without(object: &lake::PeopleObject, erased: &[i64]) -> Vec<i64> {
    object
        .rows
        .iter()
        .map(|p| p.id)
        .filter(|id| !erased.contains(id))
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_projected_table_with_no_registered_partition_is_searched_in_full(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let people = lake::people();
    // Folders named by the template, not `key=value`; nothing registered in Glue.
    for o in &people {
        let name = o.key.rsplit('/').next().unwrap();
        lake.put(&format!("proj/{}/{name}", o.country), &o.bytes)
            .await;
    }
    // A country the projection does not generate: not the table's, never searched.
    let stray = "proj/it/part-0.parquet";
    lake.put(stray, &people[0].bytes).await;
    let template = format!("s3://{}/proj/${{country}}/", lake.bucket);
    lake.table(
        "projected",
        &format!("s3://{}/proj/", lake.bucket),
        ("country", "string"),
        &[
            ("projection.enabled", "true"),
            ("projection.country.type", "enum"),
            ("projection.country.values", "de,fr,us"),
            ("storage.location.template", &template),
        ],
    )
    .await;
    lake.mapper("projected", "projected", "country").await;
    // people[0] is de (ids 0..), people[2] is fr (ids 6000..).
    queue(
        &lake.app,
        json!([
            {"match_id": 5},
            {"match_id": [{"column": "country", "value": "fr"}, {"column": "id", "value": 6001}],
             "data_mappers": ["projected"]},
            // In no object: 6002 is in fr, not de.
            {"match_id": [{"column": "country", "value": "de"}, {"column": "id", "value": 6002}],
             "data_mappers": ["projected"]},
        ]),
    )
    .await;
    let job = lake.run_job(&["projected"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["partitions_listed"], 3, "{job}");
    assert_eq!(job["stats"]["rows_removed"], 2, "{job}");
    assert!(
        lake.event_kinds(&job)
            .await
            .contains(&"object_not_the_tables".to_owned())
    );
    assert_eq!(
        read_ids(&lake.s3, &lake.bucket, stray).await,
        without(&people[0], &[])
    );
    assert_eq!(lake.versions(stray).await, 1, "never written");
    for o in &people {
        let name = o.key.rsplit('/').next().unwrap();
        let key = format!("proj/{}/{name}", o.country);
        assert_eq!(
            read_ids(&lake.s3, &lake.bucket, &key).await,
            without(o, &[5, 6001]),
            "{key}"
        );
    }
    assert!(lake.queued().await.is_empty(), "every item was searched");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn partitions_only_in_s3_or_outside_the_table_location_are_searched_and_int_keys_compare_by_value(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let people = lake::people();
    let b = lake.bucket.clone();
    // month=01 registered (as a crawler writes it), month=02 only in S3, month 3
    // registered at a location outside the table's.
    let keys = [
        (&people[0], "visits/month=01/a.parquet"),
        (&people[2], "visits/month=02/b.parquet"),
        (&people[4], "elsewhere/m3/c.parquet"),
    ];
    for (o, key) in keys {
        lake.put(key, &o.bytes).await;
    }
    lake.table(
        "visits",
        &format!("s3://{b}/visits/"),
        ("month", "int"),
        &[],
    )
    .await;
    lake.partition("visits", "01", &format!("s3://{b}/visits/month=01/"))
        .await;
    lake.partition("visits", "3", &format!("s3://{b}/elsewhere/m3/"))
        .await;
    lake.mapper("visits", "visits", "month").await;
    queue(
        &lake.app,
        json!([
            {"match_id": 5}, {"match_id": 6005}, {"match_id": 12005},
            // An int key: the number 2 is the folder `month=02`, the text "1" is `01`.
            {"match_id": [{"column": "month", "value": 2}, {"column": "id", "value": 6006}],
             "data_mappers": ["visits"]},
            {"match_id": [{"column": "month", "value": "1"}, {"column": "id", "value": 7}],
             "data_mappers": ["visits"]},
            // 6007 is in month 2, not 3: nothing to erase.
            {"match_id": [{"column": "month", "value": 3}, {"column": "id", "value": 6007}],
             "data_mappers": ["visits"]},
        ]),
    )
    .await;
    let job = lake.run_job(&["visits"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["partitions_listed"], 3, "{job}");
    assert_eq!(job["stats"]["objects_rewritten"], 3, "{job}");
    assert!(
        lake.event_kinds(&job)
            .await
            .contains(&"unregistered_partition".to_owned())
    );
    let erased: [&[i64]; 3] = [&[5, 7], &[6005, 6006], &[12005]];
    for ((o, key), erased) in keys.iter().zip(erased) {
        assert_eq!(
            read_ids(&lake.s3, &lake.bucket, key).await,
            without(o, erased),
            "{key}"
        );
    }
    assert!(lake.queued().await.is_empty());

    // Composites alone prune by typed value: only month 3 is read for this one.
    queue(
        &lake.app,
        json!([{"match_id": [{"column": "month", "value": "03"}, {"column": "id", "value": 12006}],
                "data_mappers": ["visits"]}]),
    )
    .await;
    let job = lake.run_job(&["visits"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["partitions_pruned"], 2, "{job}");
    assert_eq!(job["stats"]["objects_rewritten"], 1, "{job}");
    assert_eq!(
        read_ids(&lake.s3, &lake.bucket, keys[2].1).await,
        without(keys[2].0, &[12005, 12006])
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn delta_and_hudi_tables_are_refused_by_catalog_entry_and_by_folder_and_iceberg_ones_are_parquet(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let people = lake::people();
    type Shape<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    // An Iceberg table is searched through its metadata: its data files are Parquet.
    lake.table(
        "ice",
        &format!("s3://{b}/ice/"),
        ("dt", "string"),
        &[
            ("table_type", "ICEBERG"),
            ("metadata_location", "s3://x/ice/metadata/1.metadata.json"),
        ],
    )
    .await;
    let ice = |format: &str| {
        json!({
            "catalog": {"provider": "glue", "database": lake.database, "table": "ice"},
            "format": format,
            "columns": ["id"],
        })
    };
    let r = lake.app.put("/v1/data_mappers/ice", ice("json")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body["errors"].to_string().contains("Iceberg"),
        "{}",
        r.body
    );
    let r = lake.app.put("/v1/data_mappers/ice", ice("parquet")).await;
    assert!(r.status.is_success(), "{}", r.body);
    let shapes: [Shape; 2] = [
        (
            "dlt",
            &[("spark.sql.sources.provider", "delta")],
            "Delta Lake",
        ),
        ("hud", &[("hoodie.table.name", "hud")], "Apache Hudi"),
    ];
    for (name, params, format) in shapes {
        lake.table(name, &format!("s3://{b}/{name}/"), ("dt", "string"), params)
            .await;
        let body = json!({
            "catalog": {"provider": "glue", "database": lake.database, "table": name},
            "format": "parquet",
            "columns": ["id"],
        });
        let r = lake
            .app
            .put(&format!("/v1/data_mappers/{name}"), body)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let errors = r.body["errors"].to_string();
        assert!(
            errors.contains("catalog.table") && errors.contains(format),
            "{errors}"
        );
    }
    // A Glue table shaped as Hudi by its input format alone.
    let mut sd = descriptor(format!("s3://{b}/hud2/"), &[("id", "bigint")], false);
    sd.input_format = Some("org.apache.hudi.hadoop.HoodieParquetInputFormat".into());
    lake.glue
        .create_table()
        .database_name(&lake.database)
        .table_input(
            TableInput::builder()
                .name("hud2")
                .storage_descriptor(sd)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": "hud2"},
        "format": "parquet", "columns": ["id"],
    });
    let r = lake.app.put("/v1/data_mappers/hud2", body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // A `path` lake with a Delta log is refused when registered…
    lake.put("delta/part-0.parquet", &people[0].bytes).await;
    lake.put(
        "delta/_delta_log/00000000000000000000.json",
        b"{\"commitInfo\":{}}\n",
    )
    .await;
    let body = json!({
        "catalog": {"provider": "path", "location": format!("s3://{b}/delta/")},
        "format": "parquet", "columns": ["id"],
    });
    let r = lake.app.put("/v1/data_mappers/delta", body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body["errors"].to_string().contains("catalog.location"),
        "{}",
        r.body
    );

    // …and a plain Glue table whose folder turns out to hold one fails find, loudly, and
    // keeps its items queued.
    lake.table("plain", &format!("s3://{b}/delta/"), ("dt", "string"), &[])
        .await;
    lake.mapper("plain", "plain", "dt").await;
    queue(
        &lake.app,
        json!([{"match_id": 5, "data_mappers": ["plain"]}]),
    )
    .await;
    let job = lake.run_job(&["plain"]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let events = lake
        .app
        .get(&format!(
            "/v1/jobs/{}/events?page_size=1000",
            job["job_id"].as_str().unwrap()
        ))
        .await;
    assert!(
        events.body.to_string().contains("Delta Lake"),
        "{}",
        events.body
    );
    assert_eq!(lake.queued().await, vec![json!(5)]);
    assert_eq!(
        read_ids(&lake.s3, &b, "delta/part-0.parquet").await,
        without(&people[0], &[]),
        "nothing rewritten"
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_archived_object_keeps_its_subjects_queued_unless_the_mapper_puts_it_out_of_scope(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let people = lake::people();
    lake.put("arch/dt=1/a.parquet", &people[0].bytes).await;
    lake.s3
        .put_object()
        .bucket(&lake.bucket)
        .key("arch/dt=1/b.parquet")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(ByteStream::from(people[1].bytes.clone()))
        .send()
        .await
        .unwrap();
    let b = lake.bucket.clone();
    lake.table("arch", &format!("s3://{b}/arch/"), ("dt", "string"), &[])
        .await;
    lake.partition("arch", "1", &format!("s3://{b}/arch/dt=1/"))
        .await;
    lake.mapper("arch", "arch", "dt").await;
    // 5 is in the readable object, 3005 in the archived one.
    queue(&lake.app, json!([{"match_id": 5}, {"match_id": 3005}])).await;
    let job = lake.run_job(&["arch"]).await;
    assert_eq!(job["status"], "completed_not_searchable", "{job}");
    assert_eq!(job["stats"]["objects_not_searchable"], 1, "{job}");
    let objects = lake.objects(&job).await;
    let archived = &objects["arch/dt=1/b.parquet"];
    assert_eq!(archived["status"], "not_searchable", "{archived}");
    assert_eq!(archived["error"], "archived in GLACIER");
    assert_eq!(
        read_ids(&lake.s3, &b, "arch/dt=1/a.parquet").await,
        without(&people[0], &[5])
    );
    assert_eq!(
        lake.versions("arch/dt=1/b.parquet").await,
        1,
        "never rewritten"
    );
    // The archived object may hold either subject: both stay queued.
    assert_eq!(lake.queued().await.len(), 2);
    assert!(
        lake.event_kinds(&job)
            .await
            .contains(&"object_not_searchable".to_owned())
    );

    // An operator puts archived objects out of scope: listed, and they keep nothing.
    lake.mapper_with("arch", "arch", "dt", json!({"skip_archived": true}))
        .await;
    let job = lake.run_job(&["arch"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let skipped = &lake.objects(&job).await["arch/dt=1/b.parquet"];
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert!(
        skipped["error"]
            .as_str()
            .unwrap()
            .contains("archived in GLACIER")
    );
    assert!(lake.queued().await.is_empty());
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn buckets_without_versioning_are_refused_unless_the_mapper_allows_them(db: sqlx::PgPool) {
    let people = lake::people();
    // Never enabled; and suspended before the object was written (its version is `null`).
    let never = new_bucket().await;
    let suspended = new_versioned_bucket().await;
    suspended
        .1
        .put_bucket_versioning()
        .bucket(&suspended.2)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for (n, bucket) in [never, suspended].into_iter().enumerate() {
        let lake = lake_in(db.clone(), bucket, |sdk| Stores::new(sdk, true)).await;
        let b = lake.bucket.clone();
        lake.put("t/dt=1/a.parquet", &people[0].bytes).await;
        lake.table("t", &format!("s3://{b}/t/"), ("dt", "string"), &[])
            .await;
        lake.partition("t", "1", &format!("s3://{b}/t/dt=1/")).await;
        let mapper = format!("unversioned{n}");
        lake.mapper(&mapper, "t", "dt").await;
        queue(
            &lake.app,
            json!([{"match_id": 5, "data_mappers": [mapper]}]),
        )
        .await;
        let job = lake.run_job(&[&mapper]).await;
        assert_eq!(job["status"], "forget_failed", "{job}");
        let id = job["job_id"].as_str().unwrap();
        let events = lake
            .app
            .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
            .await;
        let text = events.body.to_string();
        assert!(text.contains("bucket versioning is not enabled"), "{text}");
        assert_eq!(
            read_ids(&lake.s3, &b, "t/dt=1/a.parquet").await,
            without(&people[0], &[]),
            "the only copy is untouched"
        );
        assert_eq!(lake.queued().await.len(), 1);

        // The mapper accepts replacing the only copy (after the full pre-upload check).
        lake.mapper_with(&mapper, "t", "dt", json!({"allow_unversioned": true}))
            .await;
        let job = lake.run_job(&[&mapper]).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(
            read_ids(&lake.s3, &b, "t/dt=1/a.parquet").await,
            without(&people[0], &[5])
        );
        assert!(lake.queued().await.is_empty());
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn ids_are_cast_to_the_catalog_types_in_parquet_and_json_lines(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let people = lake::people();
    lake.put("typed/dt=1/a.parquet", &people[0].bytes).await;
    let columns = [
        ("id", "bigint"),
        ("email", "string"),
        ("account", "decimal(12,2)"),
    ];
    lake.table_of(
        "typed",
        &format!("s3://{b}/typed/"),
        &columns,
        false,
        ("dt", "string"),
        &[],
    )
    .await;
    lake.partition("typed", "1", &format!("s3://{b}/typed/dt=1/"))
        .await;
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": "typed"},
        "format": "parquet", "columns": ["id", "email", "account"],
    });
    assert_eq!(
        lake.app.put("/v1/data_mappers/typed", body).await.status,
        StatusCode::CREATED
    );
    let lines = [
        r#"{"uid": "42", "code": "x"}"#,
        r#"{"uid": 43, "code": 7}"#,
        r#"{"uid": 44, "code": "07"}"#,
        r#"{"uid": "0045", "code": "y"}"#,
    ];
    lake.put(
        "jtyped/dt=1/a.json",
        format!("{}\n", lines.join("\n")).as_bytes(),
    )
    .await;
    let jcolumns = [("uid", "int"), ("code", "string")];
    lake.table_of(
        "jtyped",
        &format!("s3://{b}/jtyped/"),
        &jcolumns,
        true,
        ("dt", "string"),
        &[],
    )
    .await;
    lake.partition("jtyped", "1", &format!("s3://{b}/jtyped/dt=1/"))
        .await;
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": "jtyped"},
        "format": "json", "columns": ["uid", "code"],
    });
    let r = lake.app.put("/v1/data_mappers/jtyped", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["column_types"],
        json!({"code": "string", "uid": "int"})
    );

    // An id no match column's type can take is refused, naming the field; nothing queued.
    let ids_only = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": "typed"},
        "format": "parquet", "columns": ["id", "account"],
    });
    lake.app.put("/v1/data_mappers/numbers", ids_only).await;
    for (bad, field) in [
        (
            json!({"match_id": "abc", "data_mappers": ["numbers"]}),
            "matches[0].match_id",
        ),
        (
            json!({"match_id": 12.345, "data_mappers": ["numbers"]}),
            "matches[0].match_id",
        ),
        (
            json!({"match_id": [{"column": "id", "value": "1.5"}], "data_mappers": ["numbers"]}),
            "matches[0].match_id[0].value",
        ),
    ] {
        let r = lake
            .app
            .patch("/v1/queue/matches", json!({"matches": [bad]}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["errors"].to_string().contains(field), "{}", r.body);
    }
    assert!(lake.queued().await.is_empty());

    queue(
        &lake.app,
        json!([
            // Strings for the bigint and the decimal(12,2) column.
            {"match_id": "0017", "data_mappers": ["typed"]},
            {"match_id": "123.50", "data_mappers": ["typed"]},
            {"match_id": [{"column": "id", "value": "18"}, {"column": "email", "value": "user18@example.com"}],
             "data_mappers": ["typed"]},
            // A number for a string column, and numbers / numeric texts in an int column.
            {"match_id": 7, "data_mappers": ["jtyped"]},
            {"match_id": 42, "data_mappers": ["jtyped"]},
            {"match_id": "45", "data_mappers": ["jtyped"]},
        ]),
    )
    .await;
    let job = lake.run_job(&["typed", "jtyped"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    // account = id % 1000 + 0.50: 123.50 is ids 123, 1123 and 2123.
    assert_eq!(
        read_ids(&lake.s3, &b, "typed/dt=1/a.parquet").await,
        without(&people[0], &[17, 18, 123, 1123, 2123])
    );
    let left = object_bytes(&lake.s3, &b, "jtyped/dt=1/a.json").await;
    // "07" is not the text of 7; 44 was never asked for.
    assert_eq!(
        String::from_utf8(left.to_vec()).unwrap(),
        format!("{}\n", lines[2])
    );
    assert!(lake.queued().await.is_empty());
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn each_subject_gets_an_account_a_dry_run_gives_the_blast_radius(db: sqlx::PgPool) {
    use lethe::db::server_secret;
    use lethe::domain::match_id::{MatchId, match_hash};
    use lethe::jobs::finalize::{REPORT_KEY, random_key};
    let lake = lake(db.clone()).await;
    let b = lake.bucket.clone();
    let people = lake::people();
    lake.put("acct/dt=1/a.parquet", &people[0].bytes).await;
    lake.put("acct/dt=1/b.parquet", &people[1].bytes).await;
    lake.table("acct", &format!("s3://{b}/acct/"), ("dt", "string"), &[])
        .await;
    lake.partition("acct", "1", &format!("s3://{b}/acct/dt=1/"))
        .await;
    lake.mapper("acct", "acct", "dt").await;
    // 5 is in a, 3007 in b; user7@ is the email of six rows in each (3007 among them);
    // 999999 is nowhere.
    let ids = [
        json!(5),
        json!(3007),
        json!("user7@example.com"),
        json!(999999),
    ];
    queue(
        &lake.app,
        Value::Array(ids.iter().map(|id| json!({"match_id": id})).collect()),
    )
    .await;
    let mut conn = db.acquire().await.unwrap();
    let key = server_secret::get_or_create(&mut conn, REPORT_KEY, random_key)
        .await
        .unwrap();
    let hash = |id: &Value| match_hash(&key, &MatchId::from_stored(id).unwrap());
    let report = |job: Value| {
        let app = &lake.app;
        async move {
            let id = job["job_id"].as_str().unwrap().to_owned();
            app.get(&format!("/v1/jobs/{id}/report")).await.body
        }
    };
    let account = |report: &Value, id: &Value| {
        report["matches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["match_hash"] == hash(id))
            .cloned()
            .unwrap_or_else(|| panic!("no account for {id}"))
    };

    let r = lake
        .app
        .post(
            "/v1/jobs",
            Some(json!({"dry_run": true, "data_mappers": ["acct"]})),
        )
        .await;
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    lake.app.worker("w").run_until_idle().await.unwrap();
    let dry = report(json!({"job_id": job})).await;
    assert_eq!(dry["job"]["status"], "completed", "{dry}");
    for (id, status, objects, rows) in [
        (&ids[0], "matched", 1, 1),
        (&ids[1], "matched", 1, 1),
        (&ids[2], "matched", 2, 12),
        (&ids[3], "not_found", 0, 0),
    ] {
        let m = account(&dry, id);
        assert_eq!(m["status"], status, "{id}: {m}");
        let a = &m["accounts"][0];
        assert_eq!(
            (a["data_mapper_id"].as_str(), a["objects_searched"].as_i64()),
            (Some("acct"), Some(2))
        );
        assert_eq!(
            (a["objects"].as_i64(), a["rows"].as_i64()),
            (Some(objects), Some(rows)),
            "{id}: {a}"
        );
        assert_eq!(a["rows_removed"], 0, "a dry run removes nothing");
    }
    // Per object and per match: the blast radius before anything is written.
    let b_object = dry["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "acct/dt=1/b.parquet")
        .unwrap()
        .clone();
    let per_match: std::collections::BTreeMap<String, i64> = b_object["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["match_hash"].as_str().unwrap().to_owned(),
                m["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_match,
        [(hash(&ids[1]), 1), (hash(&ids[2]), 6)]
            .into_iter()
            .collect()
    );
    assert_eq!(b_object["rows_before"], 3000);
    // 3007 is one of user7@'s six rows: the object's blast radius counts it once, where
    // the per-match counts add up to seven.
    assert_eq!(b_object["rows_matched"], 6, "{b_object}");
    assert_eq!(lake.queued().await.len(), 4, "a dry run keeps the queue");

    let job = lake.run_job(&["acct"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let real = report(job).await;
    for (id, status, rows) in [
        (&ids[0], "erased", 1),
        (&ids[1], "erased", 1),
        (&ids[2], "erased", 12),
        (&ids[3], "not_found", 0),
    ] {
        let m = account(&real, id);
        assert_eq!(m["status"], status, "{id}: {m}");
        assert_eq!(m["accounts"][0]["rows_removed"], rows, "{id}: {m}");
    }
    for o in real["objects"].as_array().unwrap() {
        assert_eq!(o["rows_matched"], o["rows_removed"], "{o}");
    }
    assert!(
        lake.queued().await.is_empty(),
        "erased and not found items leave the queue"
    );
    let erased: Vec<i64> = people[1]
        .rows
        .iter()
        .filter(|p| p.id == 3007 || p.email.as_deref() == Some("user7@example.com"))
        .map(|p| p.id)
        .collect();
    assert_eq!(erased.len(), 6);
    assert_eq!(
        read_ids(&lake.s3, &b, "acct/dt=1/b.parquet").await,
        without(&people[1], &erased)
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_glue_partition_on_a_local_path_fails_the_mapper(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    lake.put("host/dt=1/a.parquet", &lake::people()[0].bytes)
        .await;
    lake.table("host", &format!("s3://{b}/host/"), ("dt", "string"), &[])
        .await;
    // Anyone who can write a Glue partition could point Lethe at the host's files.
    lake.partition("host", "2", "file:///etc/").await;
    lake.mapper("host", "host", "dt").await;
    queue(
        &lake.app,
        json!([{"match_id": 5, "data_mappers": ["host"]}]),
    )
    .await;
    let job = lake.run_job(&["host"]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let id = job["job_id"].as_str().unwrap();
    let events = lake
        .app
        .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
        .await;
    assert!(
        events.body.to_string().contains("is not s3://"),
        "{}",
        events.body
    );
    assert_eq!(lake.queued().await, vec![json!(5)]);
}

/// A Parquet file whose footer says `file_rows` rows while its one row group holds its
/// six (the shape of parquet-testing's `repeated_no_annotation.parquet`): the footer's
/// Thrift bytes patched in place (FileMetaData's num_rows is the footer's first i64 field
/// header, 0x16; schema elements have none).
fn six_rows_with_footer_count(file_rows: u8) -> Vec<u8> {
    let rows: Vec<lake::Person> = (1..=6).map(lake::person).collect();
    let mut bytes = lake::people_parquet(&rows, parquet::basic::Compression::UNCOMPRESSED);
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let start = bytes.len() - 8 - footer as usize;
    let at = (start..bytes.len() - 1)
        .find(|&i| bytes[i] == 0x16 && bytes[i + 1] == 12)
        .expect("FileMetaData.num_rows = 6");
    bytes[at + 1] = file_rows << 1;
    bytes
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_file_whose_footer_miscounts_its_rows_fails_and_keeps_its_subject_queued(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let key = "t/dt=1/a.parquet";
    let miscounted = six_rows_with_footer_count(0);
    lake.put(key, &miscounted).await;
    lake.table("t", &format!("s3://{b}/t/"), ("dt", "string"), &[])
        .await;
    lake.partition("t", "1", &format!("s3://{b}/t/dt=1/")).await;
    lake.mapper("rows", "t", "dt").await;
    queue(
        &lake.app,
        json!([{"match_id": 4, "data_mappers": ["rows"]}]),
    )
    .await;
    let job = lake.run_job(&["rows"]).await;
    assert_eq!(job["status"], "forget_failed", "{job}");
    assert_eq!(job["stats"]["objects_failed"], 1, "{job}");
    let objects = lake.objects(&job).await;
    assert_eq!(objects[key]["status"], "failed", "{}", objects[key]);
    let why = objects[key].to_string();
    assert!(why.contains("row counts do not add up"), "{why}");
    assert_eq!(
        lake.queued().await,
        vec![json!(4)],
        "the subject stays queued"
    );
    assert_eq!(
        object_bytes(&lake.s3, &b, key).await,
        miscounted,
        "untouched"
    );
    assert_eq!(lake.versions(key).await, 1);

    // The same rows with an honest footer are found and erased exactly (the miscounted
    // version deleted first: as an old version it would fail every job).
    for v in crate::e2e_jobs::versions(&lake.s3, &b, key).await {
        let delete = lake.s3.delete_object().bucket(&b).key(key).version_id(v);
        delete.send().await.unwrap();
    }
    lake.put(key, &six_rows_with_footer_count(6)).await;
    let job = lake.run_job(&["rows"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let rows = crate::readback::parquet_rows(&object_bytes(&lake.s3, &b, key).await);
    let ids: Vec<&Value> = rows.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3), &json!(5), &json!(6)]);
    assert!(lake.queued().await.is_empty());
}

/// Someone who can write the Glue catalog points a table (or its projection template) at
/// the host's files; an operator then saves a mapper on it. The save is refused (422
/// naming the table) before any job could read them.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_glue_table_on_a_local_path_is_refused_when_its_mapper_is_saved(db: sqlx::PgPool) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    lake.table("host", "file:///etc/", ("dt", "string"), &[])
        .await;
    lake.table(
        "projected",
        &format!("s3://{b}/projected/"),
        ("dt", "string"),
        &[
            ("projection.enabled", "true"),
            ("projection.dt.type", "enum"),
            ("projection.dt.values", "1,2"),
            ("storage.location.template", "file:///etc/${dt}/"),
        ],
    )
    .await;
    lake.table("fine", &format!("s3://{b}/fine/"), ("dt", "string"), &[])
        .await;
    for (table, named) in [
        ("host", "file:///etc/"),
        ("projected", "file:///etc/${dt}/"),
    ] {
        let body = json!({
            "catalog": {"provider": "glue", "database": lake.database, "table": table},
            "format": "parquet",
            "columns": ["id", "email"],
            "partition_keys": ["dt"],
        });
        let r = lake
            .app
            .put(&format!("/v1/data_mappers/{table}"), body)
            .await;
        assert_eq!(r.invalid_fields(), ["catalog.table"], "{table}");
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(named),
            "{}",
            r.body
        );
    }
    assert_eq!(lake.app.count("data_mapper").await, 0);
    // The same mapper on an S3 table is saved.
    lake.mapper("fine", "fine", "dt").await;
    assert_eq!(lake.app.count("data_mapper").await, 1);
}
