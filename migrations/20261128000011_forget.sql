-- Forget, verify and cleanup: per-object progress, the job's forget figures, and the
-- per-match report (keyed hashes only).
alter table job_object add column partition_keys text[];
-- the object's partition values (from the catalog or its path), for composite matches
alter table job_object add column partition_values text[];
-- found -> written -> verified, or unchanged (no row matched any more), skipped (gone,
-- with ignore_object_not_found), failed, verify_failed
alter table job_object add column forget_state text not null default 'found';
alter table job_object add constraint job_object_forget_state_known check (forget_state in
    ('found', 'written', 'unchanged', 'skipped', 'failed', 'verified', 'verify_failed'));
-- the rewrite's figures, written just before the upload so a retry after a crash between
-- the upload and its record still knows them
alter table job_object add column rows_removed bigint;
alter table job_object add column rows_after bigint;
alter table job_object add column size_after bigint;
alter table job_object add column new_version_id text;
alter table job_object add column new_etag text;
alter table job_object add column row_groups_rewritten integer;
alter table job_object add column row_groups_copied integer;
alter table job_object add column versions_deleted text[] not null default '{}';
-- pending | done | skipped (mapper keeps old versions) | failed
alter table job_object add column cleanup_state text;
alter table job_object add column forget_error text;

alter table job add column objects_rewritten bigint not null default 0;
alter table job add column objects_unchanged bigint not null default 0;
alter table job add column objects_forget_failed bigint not null default 0;
alter table job add column objects_verified bigint not null default 0;
alter table job add column objects_verify_failed bigint not null default 0;
alter table job add column rows_removed bigint not null default 0;
alter table job add column bytes_written bigint not null default 0;
alter table job add column versions_deleted bigint not null default 0;
alter table job add column cleanup_failures bigint not null default 0;
alter table job add column matches_erased bigint not null default 0;

-- One row per queue item a job processed: only an HMAC-SHA256 of the match id (keyed
-- with a server secret), never the id itself.
create table job_match (
    job_id uuid not null,
    match_hash text not null,
    data_mappers text[] not null,
    -- erased (left the queue) | kept (stays queued: a mapper it applies to failed)
    status text not null,
    constraint job_match_pkey primary key (job_id, match_hash),
    constraint job_match_job_fkey foreign key (job_id) references job (job_id) on delete cascade,
    constraint job_match_status_known check (status in ('erased', 'kept'))
);
