//! Receipts signed by an AWS KMS key (moto's KMS): the key named by an alias in
//! `LETHE_RECEIPT_KMS_KEY_ID`, its public half published in the JWKS, every receipt
//! verified with it by Lethe's check and by Python's `cryptography`. moto signs `RAW`
//! messages (receipts up to 4 KiB of signing input); it does not implement `DIGEST`,
//! which the unit tests of `receipt::kms` cover with a fake KMS.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_s3::primitives::ByteStream;
use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use lethe::catalog::glue::GlueCatalog;
use lethe::receipt::verify::verify;
use lethe::receipt::{Jwks, KeySource};
use lethe::storage::Stores;
use serde_json::json;
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::run_job;
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;
use crate::receipts::{python_verifies, receipts};

/// An app over a fresh versioned bucket whose one JSON Lines object holds rows of `ids`,
/// with the data mapper `events` over it; returns it and the SDK configuration.
pub async fn lake_app(db: PgPool, ids: &[i64]) -> (TestApp, aws_config::SdkConfig) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let lines: String = ids.iter().map(|i| format!("{{\"id\": {i}}}\n")).collect();
    s3.put_object()
        .bucket(&bucket)
        .key("t/a.json")
        .body(ByteStream::from(lines.into_bytes()))
        .send()
        .await
        .unwrap();
    let app = TestApp::with_stores(
        db,
        Arc::new(GlueCatalog::new(&sdk)),
        Stores::new(&sdk, true),
    );
    let mapper = json!({
        "catalog": {"provider": "path", "location": format!("s3://{bucket}/t/"), "format": "json"},
        "format": "json",
        "columns": ["id"],
    });
    let r = app.put("/v1/data_mappers/events", mapper).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (app, sdk)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn receipts_signed_through_kms_verify_with_the_published_keys(db: PgPool) {
    let (app, sdk) = lake_app(db.clone(), &[1, 8_200_001, 8_200_002]).await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let alias = format!("alias/lethe-receipts-{}", uuid::Uuid::new_v4().simple());
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();

    let env = HashMap::from([
        ("LETHE_RECEIPT_KMS_KEY_ID".to_owned(), alias.clone()),
        (
            "LETHE_AWS_ENDPOINT_URL".to_owned(),
            std::env::var("AWS_ENDPOINT_URL").expect("moto: scripts/services.sh start_moto"),
        ),
        ("LETHE_AWS_REGION".to_owned(), "us-east-1".to_owned()),
    ]);
    let config = lethe::config::Config::from_sources(None, &env).unwrap();
    let issuer = lethe::app::receipt_issuer(&db, &config).await.unwrap();
    assert_eq!(issuer.source, KeySource::Kms);
    let app = app.with_receipts(issuer);

    queue(
        &app,
        json!([
            {"match_id": 8_200_001, "reference": "K-1"},
            {"match_id": 8_200_002, "reference": "K-2"},
            {"match_id": 8_200_099, "reference": "K-3"},
        ]),
    )
    .await;
    let job = run_job(&app, &[]).await;
    assert_eq!(job["status"], "completed", "{job}");

    let keys = app.call(Method::GET, "/v1/receipts/keys", None, None).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    let jwks: Jwks = serde_json::from_value(keys.body.clone()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let auditor = app.token("audit-1", &[Role::Auditor]);
    let path = format!("/v1/jobs/{}/receipts", job["job_id"].as_str().unwrap());
    let chain = receipts(&app, &path, &auditor).await;
    assert_eq!(chain.len(), 3);
    let ok = verify(&chain, &jwks).unwrap();
    assert_eq!((ok.first_seq, ok.last_seq), (1, 3));
    python_verifies(&jwks, &chain);

    // The published key is KMS's: its public key, read with the plain SDK, is the JWK's.
    let public = kms.get_public_key().key_id(&key_id).send().await.unwrap();
    let der = public.public_key().unwrap().as_ref();
    assert_eq!(lethe::receipt::kms::jwk_of_spki(der).unwrap(), jwks.keys[0]);

    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.body["receipts"]["key"], "kms");
    assert_eq!(ready.body["receipts"]["kid"], jwks.keys[0].kid.as_str());
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_kms_key_that_cannot_sign_receipts_stops_start_up(db: PgPool) {
    let (_, sdk) = lake_app(db.clone(), &[1]).await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let issuer_of = |key_id: String| {
        let env = HashMap::from([
            ("LETHE_RECEIPT_KMS_KEY_ID".to_owned(), key_id),
            ("LETHE_AWS_ENDPOINT_URL".to_owned(), endpoint.clone()),
            ("LETHE_AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ]);
        let config = lethe::config::Config::from_sources(None, &env).unwrap();
        let db = db.clone();
        async move { lethe::app::receipt_issuer(&db, &config).await }
    };
    let symmetric = kms.create_key().send().await.unwrap();
    let id = symmetric.key_metadata().unwrap().key_id().to_owned();
    let err = issuer_of(id).await.unwrap_err();
    assert!(
        format!("{err:#}").starts_with("LETHE_RECEIPT_KMS_KEY_ID"),
        "{err:#}"
    );
    let err = issuer_of("alias/no-such-key".into()).await.unwrap_err();
    assert!(format!("{err:#}").contains("kms:GetPublicKey"), "{err:#}");
}
