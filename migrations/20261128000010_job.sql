-- A job: one run of find -> forget -> verify -> cleanup over a snapshot of the queue.
create table job (
    job_id uuid not null,
    status text not null default 'queued',
    -- stop after find and report what would be erased
    dry_run boolean not null,
    -- the data mappers the caller chose; empty = every mapper the queued items name
    requested_data_mappers text[] not null default '{}',
    -- the settings in force when the job started (find/forget concurrency, ...)
    settings jsonb not null,
    -- api (a caller), schedule (cron) or deadline (an item's deadline came near)
    trigger text not null,
    created_by text not null,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz not null default now(),
    -- Stats: incremented in the transaction that records the work they count, guarded
    -- so that a retried task never counts twice.
    partitions_listed bigint not null default 0,
    partitions_pruned bigint not null default 0,
    objects_listed bigint not null default 0,
    objects_skipped bigint not null default 0,
    objects_scanned bigint not null default 0,
    -- objects whose every row group was excluded by statistics or bloom filters
    objects_pruned bigint not null default 0,
    objects_failed bigint not null default 0,
    objects_matched bigint not null default 0,
    bytes_scanned bigint not null default 0,
    row_groups_scanned bigint not null default 0,
    row_groups_pruned bigint not null default 0,
    rows_matched bigint not null default 0,
    constraint job_pkey primary key (job_id),
    constraint job_status_known check (status in ('queued', 'finding', 'forgetting',
        'verifying', 'cleaning_up', 'completed', 'find_failed', 'forget_failed',
        'forget_partially_failed', 'completed_cleanup_failed', 'cancelled', 'failed')),
    constraint job_trigger_known check (trigger in ('api', 'schedule', 'deadline'))
);

-- At most one job runs at a time.
create unique index job_one_active_idx on job ((true))
    where status in ('queued', 'finding', 'forgetting', 'verifying', 'cleaning_up');
create index job_created_idx on job (created_at desc, job_id desc);

-- The queue items a job processes (its snapshot); items queued later wait for the next job.
create table job_queue_item (
    job_id uuid not null,
    deletion_queue_item_id uuid not null,
    constraint job_queue_item_pkey primary key (job_id, deletion_queue_item_id),
    constraint job_queue_item_job_fkey foreign key (job_id) references job (job_id) on delete cascade
);

-- Each data mapper of a job, with the definition it had when the job started.
create table job_data_mapper (
    job_id uuid not null,
    data_mapper_id text not null,
    -- the mapper as it was at job start (a later edit does not change a running job)
    definition jsonb not null,
    -- pending -> listed (objects enqueued) | failed
    state text not null default 'pending',
    error text,
    constraint job_data_mapper_pkey primary key (job_id, data_mapper_id),
    constraint job_data_mapper_job_fkey foreign key (job_id) references job (job_id) on delete cascade,
    constraint job_data_mapper_state_known check (state in ('pending', 'listed', 'failed'))
);

create index job_data_mapper_mapper_idx on job_data_mapper (data_mapper_id);

-- Objects find recorded: those with matches (what forget rewrites) and those that failed.
create table job_object (
    job_object_id bigint generated always as identity,
    job_id uuid not null,
    data_mapper_id text not null,
    bucket text not null,
    key text not null,
    -- the exact version find read (null for unversioned buckets and local files)
    version_id text,
    etag text,
    size_bytes bigint not null,
    -- matched | failed
    status text not null,
    rows_total bigint,
    rows_matched bigint not null default 0,
    -- row groups holding matches (Parquet); empty for JSON Lines
    row_groups integer[] not null default '{}',
    error text,
    created_at timestamptz not null default now(),
    constraint job_object_pkey primary key (job_object_id),
    constraint job_object_unique unique (job_id, data_mapper_id, bucket, key),
    constraint job_object_job_fkey foreign key (job_id) references job (job_id) on delete cascade,
    constraint job_object_status_known check (status in ('matched', 'failed'))
);

-- The job's append-only event log (never holds match ids or row data).
create table job_event (
    job_event_id bigint generated always as identity,
    job_id uuid not null,
    -- info | warning | error
    level text not null,
    -- stable machine-readable kind, e.g. object_skipped, mapper_failed, job_finished
    kind text not null,
    message text not null,
    details jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint job_event_pkey primary key (job_event_id),
    constraint job_event_job_fkey foreign key (job_id) references job (job_id) on delete cascade,
    constraint job_event_level_known check (level in ('info', 'warning', 'error'))
);

create index job_event_job_idx on job_event (job_id, job_event_id);

-- Tasks belong to a job (or to none); a task records its result exactly once.
alter table task add column job_id uuid;
-- set in the transaction that records the task's effects, fenced by the lease owner:
-- a rerun after a crash sees it and does nothing twice
alter table task add column recorded_at timestamptz;
alter table task drop constraint task_state_known;
alter table task add constraint task_state_known
    check (state in ('queued', 'running', 'succeeded', 'failed', 'cancelled'));
alter table task add constraint task_job_fkey foreign key (job_id) references job (job_id) on delete cascade;
create index task_job_idx on task (job_id, state) where job_id is not null;

-- When the scheduler last evaluated the cron schedule (single row).
create table scheduler_state (
    scheduler_state_id boolean not null default true,
    cron_checked_at timestamptz not null default now(),
    constraint scheduler_state_pkey primary key (scheduler_state_id),
    constraint scheduler_state_singleton check (scheduler_state_id)
);
insert into scheduler_state default values;
