//! JSON Lines read as the Glue table's SerDe reads them, end to end against Postgres and
//! moto through the REST API: an OpenX `mapping.customer_id = CustomerID`, keys differing
//! in case, duplicate keys, and the column's type as the table has it when the job runs
//! (not when the mapper was written). The lake is read back with Python's json.

use aws_sdk_glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake};
use crate::e2e_jobs::object_bytes;
use crate::jobs::queue;
use crate::readback::json_lines;

/// A JSON Lines table's storage: OpenX SerDe with `parameters`, one `customer_id` column.
fn openx(location: &str, id_type: &str, parameters: &[(&str, &str)]) -> StorageDescriptor {
    let mut serde =
        SerDeInfo::builder().serialization_library("org.openx.data.jsonserde.JsonSerDe");
    for (k, v) in parameters {
        serde = serde.parameters(*k, *v);
    }
    StorageDescriptor::builder()
        .location(location)
        .input_format("org.apache.hadoop.mapred.TextInputFormat")
        .serde_info(serde.build())
        .columns(
            Column::builder()
                .name("customer_id")
                .r#type(id_type)
                .build()
                .unwrap(),
        )
        .columns(
            Column::builder()
                .name("name")
                .r#type("string")
                .build()
                .unwrap(),
        )
        .build()
}

fn table_input(name: &str, sd: StorageDescriptor) -> TableInput {
    TableInput::builder()
        .name(name)
        .storage_descriptor(sd)
        .partition_keys(
            Column::builder()
                .name("dt")
                .r#type("string")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// The rows a job's report says it removed for `id`, summed over its accounts.
async fn removed_for(lake: &Lake, job: &Value, id: &Value) -> i64 {
    use lethe::domain::match_id::{MatchId, match_hash};
    use lethe::jobs::finalize::{REPORT_KEY, random_key};
    let mut conn = lake.app.db.acquire().await.unwrap();
    let key = lethe::db::server_secret::get_or_create(&mut conn, REPORT_KEY, random_key)
        .await
        .unwrap();
    let job_id = job["job_id"].as_str().unwrap();
    let report = lake
        .app
        .get(&format!("/v1/jobs/{job_id}/report"))
        .await
        .body;
    let account = report["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["match_hash"] == match_hash(&key, &MatchId::from_stored(id).unwrap()))
        .unwrap_or_else(|| panic!("no account for {id}: {report}"))
        .clone();
    assert_eq!(account["status"], "erased", "{account}");
    account["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rows_removed"].as_i64().unwrap_or(0))
        .sum()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_openx_table_is_searched_in_its_mapped_keys_in_any_case_and_every_duplicate(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let b = lake.bucket.clone();
    let location = format!("s3://{b}/cust/");
    let mapping = [("mapping.customer_id", "CustomerID")];
    // Each line and the queued ids it holds as the SerDe reads `customer_id`.
    let lines: [(&str, &[i64]); 8] = [
        (r#"{"CustomerID": 5, "name": "the mapped key"}"#, &[5]),
        (
            r#"{"customerid": 5, "name": "the mapped key in another case"}"#,
            &[5],
        ),
        (
            r#"{"customer_id": 5, "name": "the column's own name is not read"}"#,
            &[],
        ),
        (
            r#"{"CustomerID": 5, "CustomerID": 7, "name": "first of a duplicate"}"#,
            &[5],
        ),
        (
            r#"{"CustomerID": 7, "CUSTOMERID": 5, "name": "last of a duplicate"}"#,
            &[5],
        ),
        (
            r#"{"CustomerID": "0009", "name": "a text read as the bigint it is now"}"#,
            &[9],
        ),
        (
            r#"{"CustomerID": 9, "customerID": 5, "name": "two subjects"}"#,
            &[5, 9],
        ),
        (r#"{"CustomerID": 7, "name": "nobody asked"}"#, &[]),
    ];
    let text: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    lake.put("cust/dt=1/a.json", text.as_bytes()).await;
    let untouched = b"{\"customer_id\": 5, \"name\": \"x\"}\n{\"CustomerID\": 8}\n";
    lake.put("cust/dt=1/b.json", untouched).await;

    // The mapper is written while customer_id is a string; the table then changes it to
    // bigint: the job reads "0009" as the table has it when the job runs.
    lake.glue
        .create_table()
        .database_name(&lake.database)
        .table_input(table_input("cust", openx(&location, "string", &mapping)))
        .send()
        .await
        .unwrap();
    lake.glue
        .create_partition()
        .database_name(&lake.database)
        .table_name("cust")
        .partition_input(
            PartitionInput::builder()
                .values("1")
                .storage_descriptor(openx(&format!("{location}dt=1/"), "string", &mapping))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let body = json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": "cust"},
        "format": "json", "columns": ["customer_id"], "partition_keys": ["dt"],
    });
    let r = lake.app.put("/v1/data_mappers/cust", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["column_types"], json!({"customer_id": "string"}));
    lake.glue
        .update_table()
        .database_name(&lake.database)
        .table_input(table_input("cust", openx(&location, "bigint", &mapping)))
        .send()
        .await
        .unwrap();

    let ids = [json!(5), json!(9)];
    queue(
        &lake.app,
        Value::Array(ids.iter().map(|id| json!({"match_id": id})).collect()),
    )
    .await;
    let job = lake.run_job(&["cust"]).await;
    assert_eq!(job["status"], "completed", "{job}");

    let kept: Vec<String> = lines
        .iter()
        .filter(|(_, held)| held.is_empty())
        .map(|(l, _)| l.to_string())
        .collect();
    let left = object_bytes(&lake.s3, &b, "cust/dt=1/a.json").await;
    assert_eq!(json_lines(&left, false), kept);
    assert_eq!(
        String::from_utf8(left.to_vec()).unwrap(),
        kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
        "the kept lines are byte-identical"
    );
    let other = object_bytes(&lake.s3, &b, "cust/dt=1/b.json").await;
    assert_eq!(other.as_ref(), untouched);
    assert_eq!(
        lake.versions("cust/dt=1/b.json").await,
        1,
        "never rewritten"
    );

    // Each subject's account counts a line once; the job removed each line once.
    for id in &ids {
        let n = id.as_i64().unwrap();
        let held = lines.iter().filter(|(_, h)| h.contains(&n)).count() as i64;
        assert_eq!(removed_for(&lake, &job, id).await, held, "{id}");
    }
    let removed = lines.len() - kept.len();
    assert_eq!(job["stats"]["rows_removed"], removed, "{job}");
    assert_eq!(job["stats"]["rows_matched"], removed, "{job}");
    assert!(lake.queued().await.is_empty());
}
