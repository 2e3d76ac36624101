-- The declared types of an object's partition keys (Glue type text, '' when untyped):
-- forget compares partition values by them exactly as find did.
alter table job_object add column partition_types text[];

-- Rewriting in a bucket without versioning replaces the only copy: refused unless the
-- mapper allows it. Archived objects keep their items queued unless the mapper puts
-- them out of scope.
alter table data_mapper
    add column allow_unversioned boolean not null default false,
    add column skip_archived boolean not null default false;

-- Objects that could not be read at all (archived, access or KMS denied) are reported
-- `not_searchable` and keep the items they may hold queued; with `skip_archived` an
-- archived object is reported `skipped` (out of scope). A job that met any ends
-- `completed_not_searchable`.
alter table job_object drop constraint job_object_status_known;
alter table job_object add constraint job_object_status_known
    check (status in ('matched', 'failed', 'not_searchable', 'skipped'));
alter table job drop constraint job_status_known;
alter table job add constraint job_status_known check (status in ('queued', 'finding',
    'forgetting', 'verifying', 'cleaning_up', 'completed', 'find_failed', 'forget_failed',
    'forget_partially_failed', 'completed_cleanup_failed', 'completed_not_searchable',
    'cancelled', 'failed'));
alter table job add column objects_not_searchable bigint not null default 0;

-- The Glue types of a mapper's match columns (dotted path → type), read when the mapper
-- is written: ids are cast to them (queue-time validation, JSON Lines comparison).
alter table data_mapper add column column_types jsonb not null default '{}';

-- Versions an earlier job left behind (its object verified, its cleanup failed or never
-- ran: cancelled, crashed) are deleted by the next job over the mapper: the object is
-- recorded again as `leftover` (only its cleanup runs).
alter table job_object drop constraint job_object_status_known;
alter table job_object add constraint job_object_status_known
    check (status in ('matched', 'failed', 'not_searchable', 'skipped', 'leftover'));
create index job_object_key_idx on job_object (bucket, key);
create index job_object_leftover_idx on job_object (data_mapper_id)
    where forget_state = 'verified' and (cleanup_state is null or cleanup_state = 'failed');

-- The per-subject account. Find records, per object holding matches, the rows each
-- match (by its keyed hash) has in it; each mapper counts the objects it searched; the
-- report gives each match an account per mapper and a status: erased, not_found (every
-- applicable object searched, no row), kept (with the reason), or matched (a dry run).
create table job_object_match (
    job_id uuid not null,
    job_object_id bigint not null,
    match_hash text not null,
    rows bigint not null,
    constraint job_object_match_pkey primary key (job_id, job_object_id, match_hash),
    constraint job_object_match_object_fkey foreign key (job_object_id)
        references job_object (job_object_id) on delete cascade
);
alter table job_data_mapper add column objects_searched bigint not null default 0;
alter table job_match add column accounts jsonb not null default '[]';
alter table job_match drop constraint job_match_status_known;
alter table job_match add constraint job_match_status_known
    check (status in ('erased', 'not_found', 'kept', 'matched'));
