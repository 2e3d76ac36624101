//! `audit_event`: append-only record of mutating calls. Never holds match ids.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, QueryBuilder};

/// A new audit event.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The `x-request-id` the client sent, recorded beside the server's own.
    pub client_request_id: Option<&'a str>,
    pub details: Value,
}

/// Who made a change, as the audit trail records it: a token's subject and the request's
/// ids, or `scheduler` (no request).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub subject: &'a str,
    pub request_id: Option<&'a str>,
    pub client_request_id: Option<&'a str>,
}

impl Actor<'static> {
    /// The scheduler, which starts jobs on its own (cron, deadlines).
    pub const SCHEDULER: Actor<'static> = Actor {
        subject: "scheduler",
        request_id: None,
        client_request_id: None,
    };
}

impl<'a> Actor<'a> {
    /// An event by this actor.
    pub fn event(
        &self,
        action: &'a str,
        target_type: &'a str,
        target_id: Option<&'a str>,
        details: Value,
    ) -> NewAuditEvent<'a> {
        NewAuditEvent {
            actor: self.subject,
            action,
            target_type,
            target_id,
            request_id: self.request_id,
            client_request_id: self.client_request_id,
            details,
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub audit_event_id: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// Filters for listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Keyset cursor: the id of the first event of the page.
    pub start_at: Option<i64>,
}

pub async fn insert_audit_event(
    db: impl PgExecutor<'_>,
    event: NewAuditEvent<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"insert into audit_event
               (actor, action, target_type, target_id, request_id, client_request_id, details)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
    )
    .bind(event.actor)
    .bind(event.action)
    .bind(event.target_type)
    .bind(event.target_id)
    .bind(event.request_id)
    .bind(event.client_request_id)
    .bind(event.details)
    .execute(db)
    .await?;
    Ok(())
}

/// Lists up to `limit` events, newest first.
pub async fn list_audit_events(
    db: impl PgExecutor<'_>,
    filter: &AuditFilter,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    let mut q = QueryBuilder::new(
        "select audit_event_id, actor, action, target_type, target_id, request_id, client_request_id, details, created_at \
         from audit_event where true",
    );
    if let Some(actor) = &filter.actor {
        q.push(" and actor = ").push_bind(actor);
    }
    if let Some(action) = &filter.action {
        q.push(" and action = ").push_bind(action);
    }
    if let Some(since) = filter.since {
        q.push(" and created_at >= ").push_bind(since);
    }
    if let Some(start) = filter.start_at {
        q.push(" and audit_event_id <= ").push_bind(start);
    }
    q.push(" order by audit_event_id desc limit ")
        .push_bind(limit);
    q.build_query_as().fetch_all(db).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event<'a>(actor: &'a str, action: &'a str) -> NewAuditEvent<'a> {
        NewAuditEvent {
            actor,
            action,
            target_type: "data_mapper",
            target_id: Some("people"),
            request_id: Some("req-1"),
            client_request_id: None,
            details: json!({"count": 1}),
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn events_list_newest_first_with_filters_and_cursor(pool: sqlx::PgPool) {
        for (actor, action) in [
            ("alice", "a.create"),
            ("bob", "a.create"),
            ("alice", "a.delete"),
        ] {
            insert_audit_event(&pool, event(actor, action))
                .await
                .unwrap();
        }
        let all = list_audit_events(&pool, &AuditFilter::default(), 10)
            .await
            .unwrap();
        let actions: Vec<_> = all
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("alice", "a.delete"),
                ("bob", "a.create"),
                ("alice", "a.create")
            ]
        );

        let alice = AuditFilter {
            actor: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(list_audit_events(&pool, &alice, 10).await.unwrap().len(), 2);
        let creates = AuditFilter {
            action: Some("a.create".into()),
            ..Default::default()
        };
        assert_eq!(
            list_audit_events(&pool, &creates, 10).await.unwrap().len(),
            2
        );
        let future = AuditFilter {
            since: Some(Utc::now() + chrono::Duration::hours(1)),
            ..Default::default()
        };
        assert!(
            list_audit_events(&pool, &future, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let page = AuditFilter {
            start_at: Some(all[1].audit_event_id),
            ..Default::default()
        };
        let rest = list_audit_events(&pool, &page, 10).await.unwrap();
        assert_eq!(
            rest.iter().map(|e| e.audit_event_id).collect::<Vec<_>>(),
            [all[1].audit_event_id, all[2].audit_event_id]
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn audit_rows_cannot_be_changed_or_removed(pool: sqlx::PgPool) {
        sqlx::query(
            "insert into audit_event (actor, action, target_type, target_id, details, request_id)
             values ('a', 'x.y', 't', null, '{}', null)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for sql in [
            "update audit_event set actor = 'someone else'",
            "delete from audit_event",
            "truncate audit_event",
        ] {
            let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        let count: i64 = sqlx::query_scalar("select count(*) from audit_event")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 1);
    }
}
