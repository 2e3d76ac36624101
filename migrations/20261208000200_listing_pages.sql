-- `find.mapper` lists page by page: each page's follow-up tasks are enqueued in the
-- transaction that saves where the listing stands (`progress`), so a killed worker's
-- successor resumes after the last recorded page. Partitions seen so far are kept apart,
-- so a partition spanning pages is counted (listed, pruned) once. Both go when the
-- mapper's listing is recorded.
create table job_listing (
    job_id uuid not null,
    data_mapper_id text not null,
    progress jsonb not null,
    updated_at timestamptz not null default now(),
    constraint job_listing_pkey primary key (job_id, data_mapper_id),
    constraint job_listing_job_fkey foreign key (job_id) references job (job_id) on delete cascade
);

create table job_listed_partition (
    job_id uuid not null,
    data_mapper_id text not null,
    -- `group`: a partition of the listing; `discovered`: one found by path, not registered.
    kind text not null,
    partition_values text not null,
    constraint job_listed_partition_pkey primary key (job_id, data_mapper_id, kind, partition_values),
    constraint job_listed_partition_job_fkey foreign key (job_id) references job (job_id) on delete cascade
);
