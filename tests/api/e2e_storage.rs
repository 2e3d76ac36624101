//! The S3 object store against moto through the real aws-sdk-s3: paginated listing and
//! ranged reads of a given version.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use lethe::storage::s3::S3Store;
use lethe::storage::{ObjectStore, StorageError, list_all};

/// The SDK config for moto, an S3 client, and a fresh bucket.
pub async fn new_bucket() -> (aws_config::SdkConfig, aws_sdk_s3::Client, String) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at a moto server; run scripts/test");
    let sdk = lethe::aws::sdk_config(&lethe::config::AwsConfig {
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        s3_force_path_style: true,
        ..Default::default()
    })
    .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("lethe-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    (sdk, s3, bucket)
}

/// [`new_bucket`] with versioning enabled, as Lethe requires of a lake.
pub async fn new_versioned_bucket() -> (aws_config::SdkConfig, aws_sdk_s3::Client, String) {
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
    (sdk, s3, bucket)
}

#[tokio::test]
async fn s3_listing_pages_and_ranged_reads_of_versions_work_against_the_emulator() {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    for i in 0..5 {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("t/dt=1/part-{i}.json"))
            .body(ByteStream::from(format!("{{\"i\": {i}}}\n").into_bytes()))
            .send()
            .await
            .unwrap();
    }
    let first = s3
        .put_object()
        .bucket(&bucket)
        .key("t/v.txt")
        .body(ByteStream::from_static(b"0123456789"))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("t/v.txt")
        .body(ByteStream::from_static(b"abcdefghij"))
        .send()
        .await
        .unwrap();

    let mut store = S3Store::new(&sdk, true);
    store.page_size = 2;
    let page = store.list_page(&bucket, "t/", None).await.unwrap();
    assert_eq!(page.objects.len(), 2);
    assert!(page.next.is_some());
    let all = list_all(&store, &bucket, "t/", false).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|o| o.etag.is_some() && o.size > 0));

    assert_eq!(
        &store
            .get_range(&bucket, "t/v.txt", None, 2..5)
            .await
            .unwrap()[..],
        b"cde"
    );
    let old = first.version_id().unwrap();
    assert_eq!(
        &store
            .get_range(&bucket, "t/v.txt", Some(old), 2..5)
            .await
            .unwrap()[..],
        b"234"
    );
    assert!(matches!(
        store.get_range(&bucket, "t/missing", None, 0..1).await,
        Err(StorageError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_find_with_ranged_reads_over_s3_agrees_with_the_data() {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use lethe::jobs::find::{ObjectRef, find_parquet};
    use lethe::lakefile::match_set::MatchSet;
    use std::sync::Arc;

    let (sdk, s3, bucket) = new_bucket().await;

    let n = 20_000i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("name-{}", i % 100)),
            )),
        ],
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(5_000))
        .build();
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let size = buf.len() as u64;
    let put = s3
        .put_object()
        .bucket(&bucket)
        .key("t/part-0.parquet")
        .body(ByteStream::from(buf))
        .send()
        .await
        .unwrap();

    let store = S3Store::new(&sdk, true);
    let object = ObjectRef {
        bucket: &bucket,
        key: "t/part-0.parquet",
        version_id: put.version_id(),
        size,
    };
    let ids = MatchSet::from_values(&[serde_json::json!(12_345), serde_json::json!("name-7")]);
    let (report, read) = find_parquet(
        &store,
        &object,
        (&["id".to_owned(), "name".to_owned()], None),
        &ids,
    )
    .await
    .unwrap();
    // Row 12345 (its name is name-45) plus the 200 rows named name-7, in every row group.
    assert_eq!(report.rows_matched, 201);
    assert_eq!(report.matching_row_groups, [0, 1, 2, 3]);
    assert!(read <= size + 64 * 1024);
    let (only_id, _) = find_parquet(
        &store,
        &object,
        (&["id".to_owned()], None),
        &MatchSet::from_values(&[serde_json::json!(12_345)]),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            only_id.rows_matched,
            only_id.row_groups_pruned_by_statistics
        ),
        (1, 3)
    );
}

#[tokio::test]
async fn every_aws_call_is_counted_by_service_operation_and_error_code() {
    let (sdk, s3, bucket) = new_bucket().await;
    s3.put_object()
        .bucket(&bucket)
        .key("t/a.json")
        .body(ByteStream::from_static(b"{}\n"))
        .send()
        .await
        .unwrap();
    let metrics = std::sync::Arc::new(lethe::metrics::Metrics::default());
    let store = S3Store::with_metrics(&sdk, true, metrics.clone());
    store.head(&bucket, "t/a.json").await.unwrap();
    store.head(&bucket, "t/a.json").await.unwrap();
    assert!(store.head(&bucket, "t/missing.json").await.is_err());
    assert!(
        list_all(&store, "no-such-bucket-lethe", "t/", false)
            .await
            .is_err()
    );
    let glue = lethe::catalog::glue::GlueCatalog::with_metrics(&sdk, metrics.clone());
    use lethe::catalog::Catalog;
    assert!(glue.get_table("no_such_db", "t").await.is_err());

    let text = metrics.render();
    for line in [
        "lethe_aws_calls_total{service=\"s3\",operation=\"HeadObject\",code=\"ok\"} 2",
        "lethe_aws_calls_total{service=\"s3\",operation=\"HeadObject\",code=\"http_404\"} 1",
        "lethe_aws_calls_total{service=\"s3\",operation=\"ListObjectsV2\",code=\"NoSuchBucket\"} 1",
        "lethe_aws_calls_total{service=\"glue\",operation=\"GetTable\",code=\"EntityNotFoundException\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// A new file (a table format's rewrite, its metadata files) is written with
/// `If-None-Match: *`: once where no object is, and never over one (S3 answers 412).
#[tokio::test]
async fn s3_writes_a_new_file_only_where_no_object_is() {
    use lethe::storage::{ObjectAttributes, Precondition};
    let (sdk, _s3, bucket) = new_versioned_bucket().await;
    let store = S3Store::new(&sdk, true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new");
    std::fs::write(&file, b"new data file").unwrap();
    let attributes = ObjectAttributes::default();
    let put = || {
        store.upload(
            &bucket,
            "t/new.parquet",
            &file,
            Precondition::Absent,
            &attributes,
            u64::MAX,
        )
    };
    let first = put().await.unwrap();
    assert!(first.version_id.is_some(), "{first:?}");
    let again = put().await;
    assert!(
        matches!(again, Err(StorageError::PreconditionFailed)),
        "{again:?}"
    );
    let versions = store.list_versions(&bucket, "t/new.parquet").await.unwrap();
    assert_eq!(versions.len(), 1, "nothing written over it");
}
