-- Two roles. Migrations run as an owner role (it owns the tables, the triggers and the
-- functions); `serve` and `worker` connect as a member of `lethe_runtime` (a NOLOGIN group
-- role, created here when the cluster lacks it). The runtime role may only INSERT and
-- SELECT on the evidence tables (audit_event, audit_checkpoint, receipt, receipt_key): no
-- UPDATE, DELETE or TRUNCATE, and, not owning them, it cannot ALTER them or disable
-- their triggers. It has ordinary DML on every other table, and owns the four job tables
-- workers VACUUM (Postgres 15 lets only an owner vacuum a table), so `db::maintenance`
-- keeps working. Tables later migrations create get ordinary DML by default privileges:
-- a new evidence table must revoke UPDATE and DELETE (a test lists them).
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'lethe_runtime') then
        begin
            create role lethe_runtime nologin;
        exception
            when duplicate_object or unique_violation then
                null; -- created meanwhile by a migration of another database
            when insufficient_privilege then
                raise exception 'role % may not create the role lethe_runtime', current_user
                    using hint = format('as an administrator: create role lethe_runtime nologin; '
                        'grant lethe_runtime to %I; then run `lethe migrate` again '
                        '(README "Audit trail")', current_user);
        end;
    end if;
    -- To hand it the job tables, the owner must be able to act as it.
    if not pg_has_role(current_user, 'lethe_runtime', 'MEMBER') then
        begin
            execute format('grant lethe_runtime to %I', current_user);
        exception when insufficient_privilege then
            raise exception 'role % is no member of lethe_runtime and may not make itself one', current_user
                using hint = format('as an administrator: grant lethe_runtime to %I; then run '
                    '`lethe migrate` again (README "Audit trail")', current_user);
        end;
    end if;
end
$$;

do $$
declare
    schema_name text := current_schema();
    job_table text;
    superuser boolean := (select rolsuper from pg_roles where rolname = current_user);
begin
    execute format('grant usage on schema %I to lethe_runtime', schema_name);
    execute format('grant select, insert, update, delete on all tables in schema %I to lethe_runtime', schema_name);
    execute format('grant usage, select on all sequences in schema %I to lethe_runtime', schema_name);
    execute format('alter default privileges in schema %I grant select, insert, update, delete on tables to lethe_runtime', schema_name);
    execute format('alter default privileges in schema %I grant usage, select on sequences to lethe_runtime', schema_name);
    -- A new owner needs CREATE on the schema (unless a superuser hands it over); only
    -- for the hand-over.
    if not superuser then
        execute format('grant create on schema %I to lethe_runtime', schema_name);
    end if;
    foreach job_table in array array['task', 'job', 'job_object', 'job_event'] loop
        execute format('alter table %I owner to lethe_runtime', job_table);
    end loop;
    if not superuser then
        execute format('revoke create on schema %I from lethe_runtime', schema_name);
    end if;
end
$$;

revoke update, delete, truncate on audit_event, audit_checkpoint, receipt, receipt_key
    from lethe_runtime;
-- It reads which migrations ran (to refuse to start on a schema older than itself).
do $$
begin
    if to_regclass('_sqlx_migrations') is not null then
        revoke insert, update, delete, truncate on _sqlx_migrations from lethe_runtime;
    end if;
end
$$;
