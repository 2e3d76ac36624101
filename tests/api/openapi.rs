//! The committed OpenAPI document must equal the generated one.
//! Regenerate with `cargo run -- openapi > openapi/lethe.json`.

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = lethe::api::openapi().to_pretty_json().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/lethe.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/lethe.json is stale: run `cargo run -- openapi > openapi/lethe.json` and commit it"
    );
}

#[test]
fn every_operation_has_an_id_a_tag_and_documented_errors() {
    let spec: serde_json::Value =
        serde_json::from_str(&lethe::api::openapi().to_json().unwrap()).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{id} has no tag"
            );
            let responses = op["responses"].as_object().unwrap();
            // The receipts' keys are public: anyone holding a receipt checks it with them.
            if path == "/v1/receipts/keys" {
                assert!(op.get("security").is_none(), "{id}");
            } else if path.starts_with("/v1/") {
                assert_eq!(op["security"], serde_json::json!([{"bearer": []}]), "{id}");
                // `/v1/me` needs a valid token and no role: it is never 403.
                let statuses: &[&str] = if path == "/v1/me" {
                    &["401"]
                } else {
                    &["401", "403"]
                };
                for status in statuses {
                    assert!(
                        responses.contains_key(*status),
                        "{id} does not document {status}"
                    );
                }
            }
        }
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}
