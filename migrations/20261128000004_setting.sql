-- Operator-tunable settings: a single row.
create table setting (
    setting_id boolean not null default true,
    find_concurrency integer not null default 8,
    forget_concurrency integer not null default 4,
    -- objects at or above this size are written with multipart upload
    multipart_threshold_bytes bigint not null default 104857600,
    report_retention_days integer not null default 90,
    -- cron expression (5 or 6 fields, UTC); null = no scheduled jobs
    job_schedule text,
    updated_by text,
    updated_at timestamptz not null default now(),
    constraint setting_pkey primary key (setting_id),
    constraint setting_singleton check (setting_id),
    constraint setting_find_concurrency_range check (find_concurrency between 1 and 256),
    constraint setting_forget_concurrency_range check (forget_concurrency between 1 and 256),
    constraint setting_multipart_threshold_range
        check (multipart_threshold_bytes between 5242880 and 5368709120),
    constraint setting_report_retention_days_range check (report_retention_days between 1 and 3650)
);

insert into setting default values;
