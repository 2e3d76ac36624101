-- The time of a row is the database's, as the column's default always gave it: an
-- inserter's `created_at` (`infinity`, a year past 9999 — which neither side of the
-- encoding can print alike) is replaced, like `seq`, `prev_hash` and `hash`.
create or replace function audit_event_chain() returns trigger language plpgsql as $$
declare
    last_seq bigint;
    last_hash bytea;
begin
    perform pg_advisory_xact_lock(119183000495457);
    select seq, hash into last_seq, last_hash from audit_event order by seq desc limit 1;
    new.created_at := now();
    new.seq := coalesce(last_seq, 0) + 1;
    new.prev_hash := coalesce(last_hash, decode(repeat('00', 32), 'hex'));
    new.hash := sha256(new.prev_hash || audit_event_encoding(new));
    return new;
end
$$;

-- The chain's functions resolve names in Lethe's schema only. Postgres searches a
-- session's temporary schema first for tables unless `pg_temp` is named later in the
-- path, and any role may create temporary tables: without this, the runtime role could
-- shadow `audit_event` with a temporary table of its own, feed the trigger a false head
-- and plant a break that hides every later rewrite from `lethe audit verify`.
-- (After the function is replaced: a replacement drops the settings of the one before.)
do $$
declare
    s text := current_schema();
begin
    execute format('alter function audit_event_chain() set search_path = %I, pg_temp', s);
    execute format('alter function audit_event_encoding(audit_event) set search_path = %I, pg_temp', s);
    execute format('alter function audit_field(text) set search_path = %I, pg_temp', s);
    execute format('alter function audit_event_append_only() set search_path = %I, pg_temp', s);
    execute format('alter function append_only() set search_path = %I, pg_temp', s);
end
$$;
