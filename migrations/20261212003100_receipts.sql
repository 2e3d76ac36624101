-- Erasure receipts: one per queue item per job, issued in the transaction that ends the
-- job, each a compact JWS (RFC 7515, ES256) whose payload names the SHA-256 of the receipt
-- issued before it: one chain per deployment. Kept for as long as the deployment is: no
-- foreign key to `job` (a job's report expires, its receipts stay).
create table receipt (
    -- the position in the chain, from 1, without gaps
    seq bigint not null,
    -- lowercase hex SHA-256 of the previous receipt's compact JWS (null only for seq 1)
    prev_hash text,
    receipt_id uuid not null,
    job_id uuid not null,
    -- the queue item it accounts for (the item itself may have left the queue)
    deletion_queue_item_id uuid not null,
    -- the keyed hash of the item's match id (never the id)
    match_hash text not null,
    -- the item's reference (a ticket id), copied for lookups
    reference text,
    -- the receipt itself: what an auditor verifies
    jws text not null,
    -- the key that signed it (the JWS header's kid)
    kid text not null,
    issued_at timestamptz not null,
    constraint receipt_pkey primary key (seq),
    constraint receipt_id_key unique (receipt_id),
    constraint receipt_job_item_key unique (job_id, deletion_queue_item_id),
    constraint receipt_prev_hash_key unique (prev_hash),
    constraint receipt_seq_positive check (seq > 0),
    constraint receipt_prev_only_first check ((seq = 1) = (prev_hash is null))
);

create index receipt_job_idx on receipt (job_id, seq);
create index receipt_reference_idx on receipt (reference, seq) where reference is not null;
create index receipt_match_hash_idx on receipt (match_hash, seq);

-- Every public key that signed a receipt (current and retired), served as a JWKS.
create table receipt_key (
    kid text not null,
    -- the public key as a JWK (RFC 7517)
    jwk jsonb not null,
    created_at timestamptz not null default now(),
    constraint receipt_key_pkey primary key (kid)
);
