//! End to end: the real `lethe` binary (`serve` on a free port, `token`) against
//! Postgres and the moto server, validating Glue-backed mappers with real aws-sdk-glue
//! calls. Needs `AWS_ENDPOINT_URL` (scripts/test starts moto and sets it).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};
use serde_json::json;

pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at a moto server; run the suite with scripts/test")
}

/// The URL of the test's own database.
pub async fn database_url(pool: &sqlx::PgPool) -> String {
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

async fn create_glue_table(database: &str) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let glue = aws_sdk_glue::Client::new(&sdk);
    glue.create_database()
        .database_input(DatabaseInput::builder().name(database).build().unwrap())
        .send()
        .await
        .unwrap();
    let column = |name: &str, ty: &str| Column::builder().name(name).r#type(ty).build().unwrap();
    glue.create_table()
        .database_name(database)
        .table_input(
            TableInput::builder()
                .name("customers")
                .partition_keys(column("year", "string"))
                .storage_descriptor(
                    StorageDescriptor::builder()
                        .location("s3://e2e-lake/customers/")
                        .columns(column("customer_id", "bigint"))
                        .columns(column("contact", "struct<email:string,phone:string>"))
                        .input_format(
                            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                        )
                        .serde_info(
                            SerDeInfo::builder()
                                .serialization_library(
                                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

pub(crate) fn lethe(db_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lethe"));
    cmd.env("DATABASE_URL", db_url)
        .env("LETHE_AWS_ENDPOINT_URL", endpoint())
        .env("LETHE_AWS_REGION", "us-east-1")
        .env("LETHE_LOG_FORMAT", "json")
        .env_remove("LETHE_JWT_SECRET")
        .env_remove("LETHE_CONFIG_FILE");
    cmd
}

/// A token `lethe token` mints for `sub` with `role` (the server's key, in its database).
pub(crate) fn token(db_url: &str, sub: &str, role: &str) -> String {
    let out = lethe(db_url)
        .args(["token", "--sub", sub, "--role", role, "--ttl", "10m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `lethe serve` (as `command` sets it up) on a free loopback port, once it is ready;
/// returns it and its base URL.
pub(crate) async fn serve_ready(mut command: Command) -> (KillOnDrop, String) {
    let port = free_port();
    let server = KillOnDrop(
        command
            .arg("serve")
            .env("LETHE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await
            && r.status().is_success()
        {
            return (server, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("lethe serve did not become ready");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn lethe_serve_validates_glue_mappers_through_the_real_sdk(pool: sqlx::PgPool) {
    let glue_db = format!("e2e_{}", uuid::Uuid::new_v4().simple());
    create_glue_table(&glue_db).await;
    let db_url = database_url(&pool).await;

    let mut command = lethe(&db_url);
    command.stderr(Stdio::null());
    let (mut server, base) = serve_ready(command).await;
    let http = reqwest::Client::new();

    let token = token(&db_url, "e2e", "operator");

    let mapper = |columns: serde_json::Value| {
        json!({
            "catalog": {"provider": "glue", "database": glue_db, "table": "customers"},
            "format": "parquet",
            "columns": columns,
            "partition_keys": ["year"],
        })
    };
    let put = |body: serde_json::Value| {
        http.put(format!("{base}/v1/data_mappers/customers"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };

    let good = put(mapper(json!(["customer_id", "contact.email"])))
        .await
        .unwrap();
    assert_eq!(good.status(), 201);
    let bad = put(mapper(json!(["customer_id", "contact.fax"])))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "columns[1]");
    let mut missing_table = mapper(json!(["customer_id"]));
    missing_table["catalog"]["table"] = json!("nope");
    let missing = put(missing_table).await.unwrap();
    assert_eq!(missing.status(), 422);
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "catalog.table");

    let get_json = |path: &str| http.get(format!("{base}{path}")).bearer_auth(&token).send();
    let policy: serde_json::Value = get_json("/v1/data_mappers/customers/access_policy")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["location"], "s3://e2e-lake/customers/");
    let table_arn = policy["iam_policy"]["Statement"][3]["Resource"][2]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        table_arn.starts_with("arn:aws:glue:")
            && table_arn.ends_with(&format!(":table/{glue_db}/customers")),
        "{table_arn}"
    );

    // The stored mapper is the good one: the rejected write changed nothing.
    let stored: serde_json::Value = get_json("/v1/data_mappers/customers")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["columns"], json!(["customer_id", "contact.email"]));

    // SIGTERM stops the server cleanly.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = server.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exited.expect("lethe serve ignored SIGTERM").success());
}

#[tokio::test]
async fn glue_partitions_are_listed_through_the_real_sdk() {
    use aws_sdk_glue::types::PartitionInput;
    use lethe::catalog::Catalog;
    let glue_db = format!("e2e_{}", uuid::Uuid::new_v4().simple());
    create_glue_table(&glue_db).await;
    let sdk = lethe::aws::sdk_config(&lethe::config::AwsConfig {
        endpoint_url: Some(endpoint()),
        region: Some("us-east-1".into()),
        s3_force_path_style: true,
        ..Default::default()
    })
    .await;
    let glue = aws_sdk_glue::Client::new(&sdk);
    for year in ["2023", "2024"] {
        glue.create_partition()
            .database_name(&glue_db)
            .table_name("customers")
            .partition_input(
                PartitionInput::builder()
                    .values(year)
                    .storage_descriptor(
                        StorageDescriptor::builder()
                            .location(format!("s3://e2e-lake/customers/year={year}/"))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let catalog = lethe::catalog::glue::GlueCatalog::new(&sdk);
    let mut partitions = catalog
        .list_partitions(&glue_db, "customers")
        .await
        .unwrap();
    partitions.sort_by(|a, b| a.values.cmp(&b.values));
    assert_eq!(partitions.len(), 2);
    assert_eq!(partitions[1].values, ["2024"]);
    assert_eq!(partitions[1].location, "s3://e2e-lake/customers/year=2024/");
    assert!(matches!(
        catalog.list_partitions(&glue_db, "nope").await,
        Err(lethe::catalog::CatalogError::TableNotFound(_))
    ));
}
