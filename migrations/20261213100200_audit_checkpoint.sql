-- Checkpoints of the audit chain: every hour and at the end of every job, the chain's head
-- (seq and hash) and row count, signed with the receipt key as a compact JWS. Whoever keeps
-- one (`GET /v1/audit_events/checkpoints`) detects a later rewrite of the rows it covers,
-- even one that recomputed every hash after it. Append-only, as the audit trail is.
create table audit_checkpoint (
    audit_checkpoint_id bigint generated always as identity,
    -- the head it covers: the last row's seq (0: an empty chain) and hash (32 zero bytes
    -- for an empty chain)
    seq bigint not null,
    hash bytea not null,
    -- audit rows counted with the head (equal to seq while the chain is intact)
    row_count bigint not null,
    -- the checkpoint itself: what an auditor keeps and verifies
    jws text not null,
    -- the key that signed it (the JWS header's kid; its public key is in receipt_key)
    kid text not null,
    created_at timestamptz not null,
    constraint audit_checkpoint_pkey primary key (audit_checkpoint_id),
    constraint audit_checkpoint_seq_nonnegative check (seq >= 0),
    constraint audit_checkpoint_hash_length check (octet_length(hash) = 32)
);

create index audit_checkpoint_created_at_idx on audit_checkpoint (created_at);

create function append_only() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only: % refused', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_checkpoint_no_update_or_delete
    before update or delete on audit_checkpoint
    for each row execute function append_only();
create trigger audit_checkpoint_no_truncate
    before truncate on audit_checkpoint
    for each statement execute function append_only();
