-- The audit trail is a hash chain, so an edit shows: each row carries its place (`seq`,
-- from 1, without gaps), the hash of the row before it (`prev_hash`; 32 zero bytes before
-- the first) and its own `hash` = SHA-256(prev_hash || audit_event_encoding(row)). A
-- trigger computes the three on every insert, under a transaction-level advisory lock, so
-- no insert path can leave a row out of the chain and the chain never forks; whatever an
-- inserter sends for them is replaced. The encoding is specified in README ("Audit
-- trail") and recomputed outside Postgres by `lethe audit verify`.

alter table audit_event
    add column seq bigint,
    add column prev_hash bytea,
    add column hash bytea;

comment on column audit_event.seq is 'place in the hash chain, from 1, without gaps';
comment on column audit_event.prev_hash is 'hash of the row at seq - 1 (32 zero bytes for seq 1)';
comment on column audit_event.hash is 'SHA-256(prev_hash || audit_event_encoding(row))';

-- One field of the encoding: 0x00 for null; else 0x01, the length of the value's UTF-8
-- bytes as 8 bytes big-endian, then those bytes.
create function audit_field(value text) returns bytea language sql stable as $$
    select case
        when value is null then '\x00'::bytea
        else '\x01'::bytea || int8send(octet_length(convert_to(value, 'UTF8'))::bigint)
             || convert_to(value, 'UTF8')
    end
$$;

-- A row's canonical encoding: its fields in this order, each as `audit_field` encodes the
-- text form named (created_at in UTC with microseconds, details as jsonb prints itself).
create function audit_event_encoding(e audit_event) returns bytea language sql stable as $$
    select audit_field(e.seq::text)
        || audit_field(e.audit_event_id::text)
        || audit_field(to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || audit_field(e.actor)
        || audit_field(e.action)
        || audit_field(e.target_type)
        || audit_field(e.target_id)
        || audit_field(e.request_id)
        || audit_field(e.client_request_id)
        || audit_field(e.details::text)
$$;

-- Existing rows, in the order they were written.
alter table audit_event disable trigger audit_event_no_update_or_delete;
do $$
declare
    r audit_event;
    prev bytea := decode(repeat('00', 32), 'hex');
    n bigint := 0;
begin
    for r in select * from audit_event order by audit_event_id loop
        n := n + 1;
        r.seq := n;
        r.prev_hash := prev;
        r.hash := sha256(prev || audit_event_encoding(r));
        update audit_event set seq = r.seq, prev_hash = r.prev_hash, hash = r.hash
            where audit_event_id = r.audit_event_id;
        prev := r.hash;
    end loop;
end
$$;
alter table audit_event enable trigger audit_event_no_update_or_delete;

alter table audit_event
    alter column seq set not null,
    alter column prev_hash set not null,
    alter column hash set not null,
    add constraint audit_event_seq_key unique (seq),
    add constraint audit_event_seq_positive check (seq > 0),
    add constraint audit_event_hash_length check (octet_length(hash) = 32),
    add constraint audit_event_prev_hash_length check (octet_length(prev_hash) = 32);

-- Appends a row to the chain. The lock ("lethea" in ASCII) is held until the inserting
-- transaction ends, so every transaction that writes an audit row does it as its last
-- statement (the lock then lasts only until its commit). The head is read with a fresh
-- snapshot after the lock is taken (READ COMMITTED); a REPEATABLE READ transaction that
-- missed a newer row fails on `audit_event_seq_key` instead of forking the chain.
create function audit_event_chain() returns trigger language plpgsql as $$
declare
    last_seq bigint;
    last_hash bytea;
begin
    perform pg_advisory_xact_lock(119183000495457);
    select seq, hash into last_seq, last_hash from audit_event order by seq desc limit 1;
    new.seq := coalesce(last_seq, 0) + 1;
    new.prev_hash := coalesce(last_hash, decode(repeat('00', 32), 'hex'));
    new.hash := sha256(new.prev_hash || audit_event_encoding(new));
    return new;
end
$$;

create trigger audit_event_chain
    before insert on audit_event
    for each row execute function audit_event_chain();
