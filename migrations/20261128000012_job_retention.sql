-- Job reports are deleted `report_retention_days` after their job ended. Their counters
-- are added here first, so the work totals /metrics reports never go down.
create table job_stats_retired (
    -- a stat column of `job` (e.g. rows_removed), or `jobs` for the number of jobs deleted
    stat text not null,
    total bigint not null,
    constraint job_stats_retired_pkey primary key (stat)
);

create index job_finished_idx on job (finished_at) where finished_at is not null;
