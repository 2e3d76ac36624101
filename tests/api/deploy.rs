//! deploy/ and the Dockerfile, checked without Docker or Kubernetes: every YAML and JSON
//! file parses; the compose file and the manifests set only settings of the README's
//! configuration reference (which lists every variable the loader reads); the pieces the
//! deployment needs are there; Lethe's IAM policy allows every action a data mapper's
//! generated policy needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lethe::domain::iam_policy::{PolicyTarget, identity_policy};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every document of every YAML / JSON file under deploy/, as JSON values.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut paths = Vec::new();
    files(&root().join("deploy"), &mut paths);
    paths.sort();
    let mut docs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => docs.push((path.clone(), serde_json::from_str(&text).unwrap())),
            Some("yaml" | "yml") => {
                for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                    let mut value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    value.apply_merge().unwrap();
                    let json = serde_json::to_value(&value)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    docs.push((path.clone(), json));
                }
            }
            _ => {}
        }
    }
    docs
}

/// Names of Lethe settings a document sets: keys of `environment:` maps and ConfigMap
/// `data:`, and `name:` entries of container `env:` lists.
fn settings_set(value: &Value, out: &mut BTreeSet<String>) {
    let is_setting = |s: &str| s == "DATABASE_URL" || s.starts_with("LETHE_");
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if is_setting(key) {
                    out.insert(key.clone());
                }
                if key == "name"
                    && let Some(name) = v.as_str()
                    && is_setting(name)
                {
                    out.insert(name.to_owned());
                }
                settings_set(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| settings_set(v, out)),
        Value::String(s) => {
            // `KEY=value` list entries of compose environments.
            if let Some((key, _)) = s.split_once('=')
                && is_setting(key)
            {
                out.insert(key.to_owned());
            }
        }
        _ => {}
    }
}

/// The variables named in the README's configuration table.
fn readme_reference() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Configuration")
        .expect("a configuration section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first_cell = l.split('|').nth(1).unwrap_or_default();
            first_cell
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_configuration_reference_lists_every_setting_and_deploy_files_use_only_those() {
    let reference = readme_reference();
    let known: BTreeSet<String> = lethe::config::ENV_VARS
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        reference, known,
        "README configuration table vs config::ENV_VARS"
    );

    let docs = documents();
    assert!(
        docs.len() >= 9,
        "deploy/ holds the compose file, manifests and IAM policy"
    );
    let mut used = BTreeSet::new();
    for (path, doc) in &docs {
        let mut set = BTreeSet::new();
        settings_set(doc, &mut set);
        for name in &set {
            assert!(
                known.contains(name),
                "{} sets {name}, which is not a Lethe setting",
                path.display()
            );
        }
        used.extend(set);
    }
    for essential in ["DATABASE_URL", "LETHE_LISTEN_ADDR", "LETHE_WORKERS"] {
        assert!(used.contains(essential), "deploy/ never sets {essential}");
    }
}

fn find<'a>(docs: &'a [(PathBuf, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} under deploy/kubernetes"))
}

#[test]
fn the_manifests_run_api_and_workers_apart_with_probes_resources_and_a_migration_job() {
    let docs = documents();
    for (name, command, workers) in [("lethe-api", "serve", "0"), ("lethe-worker", "worker", "4")] {
        let deployment = find(&docs, "Deployment", name);
        assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 1);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"][0], command, "{name}");
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"],
            "/health/ready"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"],
            "/health/live"
        );
        assert!(
            container["resources"]["requests"]["memory"].is_string(),
            "{name}"
        );
        let env = container["env"].as_array().unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "LETHE_WORKERS" && e["value"] == workers),
            "{name} runs {workers} worker loops"
        );
        let sources: Vec<&str> = container["envFrom"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| {
                s["configMapRef"]["name"]
                    .as_str()
                    .or(s["secretRef"]["name"].as_str())
            })
            .collect();
        assert_eq!(sources, ["lethe-config", "lethe-secrets"], "{name}");
        let security = &deployment["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{name}");
    }
    find(&docs, "ConfigMap", "lethe-config");
    let secret = find(&docs, "Secret", "lethe-secrets");
    assert!(secret["stringData"]["DATABASE_URL"].is_string());
    let job = find(&docs, "Job", "lethe-migrate");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "migrate"
    );
    let service = find(&docs, "Service", "lethe-api");
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/component"],
        "api"
    );

    let compose = &docs
        .iter()
        .find(|(p, _)| p.ends_with("docker-compose.yml"))
        .expect("deploy/docker-compose.yml")
        .1;
    let services = compose["services"].as_object().unwrap();
    for needed in ["postgres", "minio", "api", "worker", "migrate"] {
        assert!(services.contains_key(needed), "compose lacks {needed}");
    }
    assert_eq!(services["api"]["command"][0], "serve");
    assert_eq!(services["worker"]["command"][0], "worker");
    assert_eq!(
        services["worker"]["environment"]["LETHE_AWS_ENDPOINT_URL"],
        "http://minio:9000"
    );
    // No shipped secret, and nothing published beyond the host's loopback.
    assert!(
        services["api"]["environment"]["LETHE_JWT_SECRET"]
            .as_str()
            .unwrap()
            .starts_with("${LETHE_JWT_SECRET:?"),
        "the JWT secret must come from the environment"
    );
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            assert!(
                port.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name} publishes {port} on every interface"
            );
        }
    }

    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for needed in [
        "AS build",
        "USER 10001",
        "HEALTHCHECK",
        "ENTRYPOINT [\"lethe\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(dockerfile.contains(needed), "Dockerfile lacks {needed}");
    }
}

#[test]
fn lethes_iam_policy_allows_every_action_a_data_mapper_needs() {
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/iam/lethe-policy.json")).unwrap(),
    )
    .unwrap();
    let actions = |p: &Value| -> BTreeSet<String> {
        p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
                _ => vec![],
            })
            .collect()
    };
    let granted = actions(&policy);
    let needed = actions(&identity_policy(&PolicyTarget {
        bucket: "lake",
        prefix: "people/",
        glue_table: Some(("db", "people")),
        role_arn: None,
        region: None,
        account: None,
    }));
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "deploy/iam/lethe-policy.json lacks {missing:?}"
    );
    for governance in [
        "lakeformation:ListPermissions",
        "lakeformation:BatchRevokePermissions",
        "lakeformation:GrantPermissions",
    ] {
        assert!(granted.contains(governance), "lacks {governance}");
    }
}
