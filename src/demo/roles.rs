//! `lethe demo`'s two database roles, as a deployment has them (README "Audit trail"): the
//! configured role migrates the scratch database as its owner (what `lethe migrate` does),
//! then `serve` runs as a login of `lethe_runtime` the demo creates, which may only append
//! to the audit trail. At the end the demo shows that role's `UPDATE` refused and the
//! chain verified against the checkpoint the job signed.

use anyhow::Context;

use crate::audit::checkpoint;
use crate::config::{Config, Secret};
use crate::receipt::Jwks;

/// The runtime login the demo creates (a fresh password each run).
const LOGIN: &str = "lethe_demo_runtime";

/// Migrates as the configured (owner) role and returns the configuration `serve` runs
/// with: the runtime login's URL in `database_url`, the owner's in
/// `migration_database_url`. Says what it did; when the configured role may not create
/// roles, the demo runs as that one role and says why.
pub(crate) async fn split(mut config: Config) -> anyhow::Result<Config> {
    let owner = crate::db::connect(&config).await?;
    crate::db::migrate(&owner).await?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    if let Err(e) = crate::db::ensure_runtime_login(&owner, LOGIN, &password).await {
        super::say(&format!(
            "   (one database role: the configured one cannot create {LOGIN}: {e})"
        ));
        return Ok(config);
    }
    owner.close().await;
    let mut url = url::Url::parse(config.database_url.expose()).context("DATABASE_URL")?;
    let named = url.set_username(LOGIN).is_ok() && url.set_password(Some(&password)).is_ok();
    anyhow::ensure!(named, "DATABASE_URL cannot name another user");
    config.migration_database_url = Some(config.database_url.clone());
    config.database_url = Secret::new(url.as_str());
    super::say(&format!(
        "   migrated as the owner role; serve connects as {LOGIN} (a lethe_runtime login: INSERT and SELECT only on the audit trail)"
    ));
    Ok(config)
}

/// The audit trail as an auditor checks it: the runtime role's `UPDATE` refused, and the
/// chain walked and held to the checkpoints the API exports, verified with the JWKS.
pub(crate) async fn check_audit(api: &super::Api, config: &Config) -> anyhow::Result<()> {
    use reqwest::Method;
    let jwks: Jwks =
        serde_json::from_value(api.call(Method::GET, "/v1/receipts/keys", None).await?)?;
    let text = api.text("/v1/audit_events/checkpoints").await?;
    let mut claims = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let cp =
            checkpoint::verify(line, &jwks).with_context(|| format!("checkpoint {}", n + 1))?;
        claims.push(cp.claim(&format!("checkpoints:{}", n + 1)));
    }
    let last = claims
        .iter()
        .map(|c| c.seq)
        .max()
        .context("no checkpoint was written")?;
    let db = crate::db::connect(config).await?;
    let refused = match crate::db::audit_event::probe_update(&db).await {
        Err(e) => match e.as_database_error() {
            Some(db) => format!("refused ({})", db.message()),
            None => return Err(e.into()),
        },
        Ok(()) => "allowed (one role: only the append-only trigger guards the rows)".to_owned(),
    };
    let intact = crate::db::audit_event::verify_chain(&db, claims.clone())
        .await?
        .map_err(|broken| anyhow::anyhow!("audit chain broken: {broken}"))?;
    db.close().await;
    super::say(&format!(
        "8. audit trail: {} rows in one hash chain, every hash recomputed and intact, held to \
         {} signed checkpoint(s) (the job's: seq {last}); the serving role's UPDATE of audit_event: {refused}",
        intact.rows,
        claims.len()
    ));
    Ok(())
}
