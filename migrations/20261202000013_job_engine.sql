-- forget_concurrency was stored, validated and shown but drove nothing: gone.
alter table setting drop column forget_concurrency;

-- Open tasks of a job by kind: what `advance` probes after a task ends. Replaces the
-- (job_id, state) index, whose entries for finished tasks every probe had to step over.
drop index task_job_idx;
create index task_open_idx on task (job_id, kind) where state in ('queued', 'running');

-- `task` is a queue: most of its rows change state within seconds, and each change
-- leaves a dead version in its indexes that every claim steps over until vacuum removes
-- it. Vacuum it after a fixed number of changes, not a fraction of its (growing) size.
alter table task set (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
-- The job row is updated by every task's record: leave room for HOT updates.
alter table job set (fillfactor = 50);
alter table job_object set (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);

-- The versions cleanup is about to delete (saved before deleting, so a retry after a
-- crash still deletes and reports them); `versions_deleted` holds only versions really
-- deleted.
alter table job_object add column versions_to_delete text[] not null default '{}';
