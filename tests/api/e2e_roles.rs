//! Cross-account access: a mapper's `role_arn` is really assumed (STS `AssumeRole` in
//! moto) and its credentials sign every S3 call of the mapper's jobs. A recording proxy
//! between Lethe and moto shows which access key signed each request.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use axum::http::StatusCode;
use lethe::catalog::glue::GlueCatalog;
use lethe::metrics::Metrics;
use lethe::storage::Stores;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::TestApp;
use crate::e2e_jobs::object_bytes;
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// Forwards every connection to moto and keeps what clients sent.
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let sent: Arc<Mutex<Vec<u8>>> = Arc::default();
    let record = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut from_server, mut to_server) = server.into_split();
                let (mut from_client, mut to_client) = client.split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown().await;
                };
                let down = tokio::io::copy(&mut from_server, &mut to_client);
                let _ = tokio::join!(up, down);
            });
        }
    });
    (address, sent)
}

/// Each request the proxy saw: its request line and the access key that signed it.
fn signed_requests(sent: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(sent);
    let mut out = Vec::new();
    for (start, _) in text.match_indices(" HTTP/1.1\r\n") {
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[line_start..start];
        if !["GET ", "PUT ", "POST ", "HEAD ", "DELETE "]
            .iter()
            .any(|m| line.starts_with(m))
        {
            continue;
        }
        let headers_end = text[start..]
            .find("\r\n\r\n")
            .map_or(text.len(), |i| start + i);
        let headers = &text[start..headers_end];
        let key = headers
            .find("Credential=")
            .map(|i| {
                headers[i + 11..]
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        out.push((line.to_owned(), key));
    }
    out
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_mappers_role_is_assumed_and_its_credentials_sign_every_s3_call_of_its_jobs(
    db: sqlx::PgPool,
) {
    let (_, s3, bucket) = new_versioned_bucket().await;
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let (proxy, sent) = recording_proxy(moto.trim_start_matches("http://").to_owned()).await;
    let aws = lethe::config::AwsConfig {
        endpoint_url: Some(proxy),
        region: Some("us-east-1".into()),
        s3_force_path_style: true,
        role_external_id: Some("lethe-test-external-id".into()),
        role_session_secs: 900,
        principal_arn: None,
        allowed_role_arns: vec!["arn:aws:iam::111111111111:role/lethe-*".into()],
        ..Default::default()
    };
    let sdk = lethe::aws::sdk_config(&aws).await;
    let metrics = Arc::<Metrics>::default();
    let stores = Stores::with_roles(&sdk, true, metrics.clone(), &aws);
    let app = TestApp::with_stores(db, Arc::new(GlueCatalog::new(&sdk)), stores);

    let lines = "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n";
    for key in ["t/a.json", "t/b.json"] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(lines.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    let role = "arn:aws:iam::111111111111:role/lethe-lake";
    let r = app
        .put(
            "/v1/data_mappers/cross",
            json!({
                "catalog": {"provider": "path", "location": format!("s3://{bucket}/t/"), "format": "json"},
                "format": "json",
                "columns": ["id"],
                "role_arn": role,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // The access policy names the trust the role needs: Lethe's principal, the external id.
    let policy = app.get("/v1/data_mappers/cross/access_policy").await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    let trust = &policy.body["trust_policy"]["Statement"][0];
    assert_eq!(trust["Action"], "sts:AssumeRole");
    assert_eq!(trust["Condition"]["Null"]["sts:SourceIdentity"], "false");
    assert!(
        trust["Principal"]["AWS"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:"),
        "{trust}"
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        "lethe-test-external-id"
    );
    assert_eq!(
        policy.body["lethe_policy"]["Statement"][0]["Resource"],
        role
    );

    queue(&app, json!([{"match_id": 2}])).await;
    sent.lock().unwrap().clear();
    let r = app
        .post("/v1/jobs", Some(json!({"data_mappers": ["cross"]})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    app.worker("w").run_until_idle().await.unwrap();
    let done = app.get(&format!("/v1/jobs/{job}")).await.body;
    assert_eq!(done["status"], "completed", "{done}");

    // The rows are gone, read back with Lethe's own (not the role's) credentials.
    for key in ["t/a.json", "t/b.json"] {
        let body = object_bytes(&s3, &bucket, key).await;
        assert_eq!(String::from_utf8_lossy(&body), "{\"id\": 1}\n{\"id\": 3}\n");
    }

    // STS was asked for the role, with the external id and a session naming the job.
    let sent = sent.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&sent);
    assert!(text.contains("Action=AssumeRole"), "no AssumeRole call");
    assert!(text.contains(&format!(
        "RoleArn={}",
        form_urlencoded::byte_serialize(role.as_bytes()).collect::<String>()
    )));
    assert!(text.contains("ExternalId=lethe-test-external-id"));
    assert!(text.contains(&format!("RoleSessionName=lethe-job-{job}")));
    // The person who started the job, and the job's and mapper's tags, go with the session.
    assert!(text.contains("SourceIdentity=admin-user"), "{text}");
    assert!(text.contains("Tags.member.1.Key=lethe%3Ajob"), "{text}");
    assert!(
        text.contains(&format!("Tags.member.1.Value={job}")),
        "{text}"
    );
    assert!(text.contains("Tags.member.2.Value=cross"), "{text}");
    let rendered = metrics.render();
    assert!(
        rendered.contains(
            "lethe_aws_calls_total{service=\"sts\",operation=\"AssumeRole\",code=\"ok\"}"
        ),
        "{rendered}"
    );
    // Every S3 call on the bucket (list, read, write, versions, delete) was signed with
    // the assumed key, never Lethe's own.
    let own_key = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let requests = signed_requests(&sent);
    let on_bucket: Vec<&(String, String)> = requests
        .iter()
        .filter(|(line, _)| line.contains(&format!("/{bucket}")))
        .collect();
    let methods: std::collections::BTreeSet<&str> = on_bucket
        .iter()
        .map(|(line, _)| line.split(' ').next().unwrap())
        .collect();
    assert!(
        methods.is_superset(&["GET", "PUT", "DELETE"].into_iter().collect()),
        "{methods:?}"
    );
    for (line, key) in &on_bucket {
        assert!(
            !key.is_empty() && *key != own_key,
            "{line} was signed with {key}"
        );
    }
    let assumed: std::collections::BTreeSet<&str> =
        on_bucket.iter().map(|(_, key)| key.as_str()).collect();
    assert_eq!(assumed.len(), 1, "one session's key: {assumed:?}");
    // The STS call itself is Lethe's own.
    assert!(
        requests
            .iter()
            .any(|(line, key)| line.starts_with("POST ") && *key == own_key)
    );
}

/// An STS that refuses every request with `code` and `status`.
async fn refusing_sts(status: u16, code: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = client.read(&mut buf).await;
                let body = format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                     <Message>refused</Message></Error><RequestId>1</RequestId></ErrorResponse>"
                );
                let answer = format!(
                    "HTTP/1.1 {status} Refused\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_is_access_denied_naming_the_role_and_a_throttled_sts_is_retryable()
 {
    for (status, code, denied) in [
        (403, "AccessDenied", true),
        (400, "Throttling", false),
        (503, "ServiceUnavailable", false),
    ] {
        let aws = lethe::config::AwsConfig {
            endpoint_url: Some(refusing_sts(status, code).await),
            region: Some("us-east-1".into()),
            s3_force_path_style: true,
            role_session_secs: 900,
            allowed_role_arns: vec!["arn:aws:iam::111111111111:role/*".into()],
            // Throttling and 503 answers are retried: few attempts, short waits.
            max_attempts: 2,
            initial_backoff_ms: 10,
            ..Default::default()
        };
        let sdk = lethe::aws::sdk_config(&aws).await;
        let stores = Stores::with_roles(&sdk, true, Arc::default(), &aws)
            .for_role(
                Some("arn:aws:iam::111111111111:role/nope"),
                &lethe::storage::RoleSession {
                    name: "lethe-job-x".into(),
                    source_identity: None,
                    tags: Vec::new(),
                },
            )
            .unwrap();
        let err = stores.s3.list_page("b", "t/", None).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cannot assume arn:aws:iam::111111111111:role/nope")
                && text.contains(code),
            "{text}"
        );
        match err {
            lethe::storage::StorageError::AccessDenied { .. } => assert!(denied, "{text}"),
            lethe::storage::StorageError::Unavailable(_) => assert!(!denied, "{text}"),
            other => panic!("{other:?}"),
        }
    }
}
