-- Queue additions a client can retry safely. A PATCH /v1/queue/matches sent with an
-- `Idempotency-Key` header records the key, a SHA-256 of what the request asked and the
-- items it created, in the transaction that creates them: a retry with the same key
-- (after a timeout, a reset connection, an API process killed mid-request) finds the
-- record and creates nothing, however often it is sent. No match id is kept here (the
-- items hold them, and are deleted when erased). Keys are kept at least 24 hours.
create table queue_add_key (
    principal text not null,
    idempotency_key text not null,
    request_sha256 bytea not null,
    item_ids uuid[] not null default '{}',
    created_at timestamptz not null default now(),
    primary key (principal, idempotency_key)
);
create index queue_add_key_created_at on queue_add_key (created_at);
