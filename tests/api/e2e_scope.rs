//! A job writes only the table's own objects, end to end against moto through the REST
//! API: a projection template wider than the table, an object in no partition of a
//! partitioned table, table formats nested below a `path` location. After each job the
//! lake is read back with the plain SDK (bytes, versions) and serde_json / the Parquet
//! reader.

use aws_sdk_glue::types::{Column, TableInput};
use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake, without};
use crate::e2e_jobs::{descriptor, object_bytes, read_ids};
use crate::jobs::queue;
use crate::lake::people;

/// A JSON Lines object of `{"id": n, "email": …}` lines.
fn lines(ids: &[i64]) -> Vec<u8> {
    ids.iter()
        .map(|id| format!("{{\"id\":{id},\"email\":\"u{id}@example.com\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// The ids of a JSON Lines object, read back by Python's own json (exact integers).
async fn json_ids(lake: &Lake, key: &str) -> Vec<i64> {
    let body = object_bytes(&lake.s3, &lake.bucket, key).await;
    crate::readback::json_lines(&body, key.ends_with(".gz"))
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// The job's events of `kind`.
pub async fn events(lake: &Lake, job: &Value, kind: &str) -> Vec<Value> {
    let id = job["job_id"].as_str().unwrap();
    let r = lake
        .app
        .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
        .await;
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_tenant_first_template_rewrites_the_tables_objects_and_never_another_tables(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let own = [
        ("acme/events/2024-01-01/part-0.json", vec![7, 8]),
        ("globex/events/2024-03-05/part-0.json", vec![9, 7, 10]),
    ];
    // Under the template's fixed prefix, at no path it generates: another table holding
    // the same id (an order number), a tenant and a date outside the projection, a
    // folder too shallow.
    let others = [
        "acme/orders/2024-01-01/part-0.json",
        "initech/events/2024-01-01/part-0.json",
        "acme/events/2023-12-31/part-0.json",
        "acme/events/part-0.json",
        "orders.json",
    ];
    for (key, ids) in &own {
        lake.put(key, &lines(ids)).await;
    }
    for key in others {
        lake.put(key, &lines(&[7, 11])).await;
    }
    let mut input = TableInput::builder()
        .name("events")
        .storage_descriptor(descriptor(
            format!("s3://{b}/acme/events/"),
            &[("id", "bigint"), ("email", "string")],
            true,
        ))
        .partition_keys(
            Column::builder()
                .name("tenant")
                .r#type("string")
                .build()
                .unwrap(),
        )
        .partition_keys(
            Column::builder()
                .name("dt")
                .r#type("string")
                .build()
                .unwrap(),
        );
    for (k, v) in [
        ("projection.enabled", "true"),
        ("projection.tenant.type", "enum"),
        ("projection.tenant.values", "acme,globex"),
        ("projection.dt.type", "date"),
        ("projection.dt.format", "yyyy-MM-dd"),
        ("projection.dt.range", "2024-01-01,NOW"),
        (
            "storage.location.template",
            &format!("s3://{b}/${{tenant}}/events/${{dt}}/"),
        ),
    ] {
        input = input.parameters(k, v);
    }
    lake.glue
        .create_table()
        .database_name(&lake.database)
        .table_input(input.build().unwrap())
        .send()
        .await
        .unwrap();
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": "events"},
        "format": "json", "columns": ["id"],
    });
    let r = lake.app.put("/v1/data_mappers/events", body).await;
    assert!(r.status.is_success(), "{}", r.body);
    let before: Vec<_> =
        futures_util::future::join_all(others.iter().map(|k| object_bytes(&lake.s3, &b, k))).await;
    queue(&lake.app, json!([{"match_id": 7}])).await;

    let job = lake.run_job(&["events"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["objects_rewritten"], 2, "{job}");
    assert_eq!(job["stats"]["rows_removed"], 2, "{job}");
    assert_eq!(json_ids(&lake, own[0].0).await, [8]);
    assert_eq!(json_ids(&lake, own[1].0).await, [9, 10]);
    for (key, bytes) in others.iter().zip(before) {
        assert_eq!(object_bytes(&lake.s3, &b, key).await, bytes, "{key}");
        assert_eq!(
            lake.versions(key).await,
            1,
            "{key}: no version written or deleted"
        );
    }
    assert!(lake.queued().await.is_empty());
    let listed = &events(&lake, &job, "mapper_listed").await[0];
    assert_eq!(listed["details"]["objects_not_the_tables"], 5, "{listed}");
    assert_eq!(listed["details"]["objects_to_search"], 2, "{listed}");
    let named = events(&lake, &job, "object_not_the_tables").await;
    assert_eq!(named.len(), 5);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_object_in_no_partition_of_a_partitioned_table_is_searched_but_never_rewritten(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let people = people();
    let (inside, stray) = ("visits/month=01/a.parquet", "visits/stray.parquet");
    lake.put(inside, &people[0].bytes).await;
    lake.put(stray, &people[1].bytes).await;
    lake.table(
        "visits",
        &format!("s3://{b}/visits/"),
        ("month", "int"),
        &[],
    )
    .await;
    lake.partition("visits", "01", &format!("s3://{b}/visits/month=01/"))
        .await;
    lake.mapper("visits", "visits", "month").await;
    // 5 is in the partition, 3005 only in the object outside every partition.
    queue(&lake.app, json!([{"match_id": 5}, {"match_id": 3005}])).await;

    for dry_run in [true, false] {
        let r = lake
            .app
            .post(
                "/v1/jobs",
                Some(json!({"dry_run": dry_run, "data_mappers": ["visits"]})),
            )
            .await;
        let id = r.body["job_id"].as_str().unwrap().to_owned();
        lake.app.worker("w").run_until_idle().await.unwrap();
        let report = lake.app.get(&format!("/v1/jobs/{id}/report")).await.body;
        assert_eq!(report["job"]["status"], "completed", "{report}");
        let kept: Vec<&Value> = report["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["status"] == "kept")
            .collect();
        assert_eq!(kept.len(), 1, "{report}");
        let account = &kept[0]["accounts"][0];
        assert_eq!(
            (account["objects"].as_i64(), account["rows"].as_i64()),
            (Some(1), Some(1))
        );
        assert!(
            account["reason"]
                .as_str()
                .unwrap()
                .starts_with("rows outside the table's partitions"),
            "{account}"
        );
        let row = report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["key"] == stray)
            .unwrap();
        assert_eq!(row["status"], "skipped", "{row}");
        assert!(
            row["error"].as_str().unwrap().contains("not rewritten"),
            "{row}"
        );
    }
    assert_eq!(
        read_ids(&lake.s3, &b, inside).await,
        without(&people[0], &[5])
    );
    assert_eq!(
        object_bytes(&lake.s3, &b, stray).await.as_ref(),
        people[1].bytes.as_slice()
    );
    assert_eq!(lake.versions(stray).await, 1, "never rewritten");
    assert_eq!(lake.queued().await, [json!(3005)]);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn delta_and_iceberg_tables_nested_below_a_path_location_fail_find_and_nothing_is_written(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let people = people();
    let data = [
        ("pm/plain/part-0.parquet", 0),
        ("pm/x/sales/part-0.parquet", 1),
        ("pm/y/ice/data/part-0.parquet", 2),
        ("ok/part-0.parquet", 3),
    ];
    for (key, n) in data {
        lake.put(key, &people[n].bytes).await;
    }
    lake.put(
        "pm/x/sales/_delta_log/00000000000000000000.json",
        b"{\"commitInfo\":{}}\n",
    )
    .await;
    lake.put(
        "pm/y/ice/metadata/00001-a.metadata.json",
        b"{\"format-version\":2}",
    )
    .await;
    // `pm` holds both (two folders down), `ice` only the Iceberg table, `ok` neither.
    for (id, location) in [("pm", "pm/"), ("ice", "pm/y/"), ("ok", "ok/")] {
        let body = json!({
            "catalog": {"provider": "path", "location": format!("s3://{b}/{location}")},
            "format": "parquet", "columns": ["id"],
        });
        let r = lake.app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert!(r.status.is_success(), "{id}: {}", r.body);
    }
    // An id in every data object.
    queue(
        &lake.app,
        json!([{"match_id": 5}, {"match_id": 3005}, {"match_id": 6005}, {"match_id": 9005}]),
    )
    .await;
    let job = lake.run_job(&["pm", "ice", "ok"]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let failed: Vec<String> = events(&lake, &job, "mapper_failed")
        .await
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let failure = |mapper: &str| {
        failed
            .iter()
            .find(|m| m.contains(&format!("mapper {mapper} ")))
            .unwrap()
    };
    assert!(failure("pm").contains("Delta Lake"), "{failed:?}");
    assert!(failure("ice").contains("Apache Iceberg"), "{failed:?}");
    // The mapper that listed fine was searched, and nothing of the job was written.
    assert_eq!(job["stats"]["objects_matched"], 1, "{job}");
    for (key, n) in data {
        assert_eq!(
            object_bytes(&lake.s3, &b, key).await.as_ref(),
            people[n].bytes.as_slice(),
            "{key}"
        );
        assert_eq!(lake.versions(key).await, 1, "{key}");
    }
    assert_eq!(lake.queued().await.len(), 4);
}
