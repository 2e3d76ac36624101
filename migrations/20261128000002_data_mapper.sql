create table data_mapper (
    data_mapper_id text not null,
    -- {"provider":"glue","database":..,"table":..} or {"provider":"path","location":..,"format":..,"partition_keys":[..]}
    catalog jsonb not null,
    format text not null,
    -- match columns; dotted paths reach nested struct / object fields
    columns text[] not null,
    -- the partition keys a composite match may name
    partition_keys text[] not null default '{}',
    -- IAM role assumed for S3 access, null = Lethe's own credentials
    role_arn text,
    delete_old_versions boolean not null default true,
    ignore_object_not_found boolean not null default false,
    find_engine text not null default 'embedded',
    created_by text not null,
    updated_by text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint data_mapper_pkey primary key (data_mapper_id),
    constraint data_mapper_id_slug check (data_mapper_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    constraint data_mapper_format_known check (format in ('parquet', 'json')),
    constraint data_mapper_find_engine_known check (find_engine in ('embedded', 'athena')),
    constraint data_mapper_columns_not_empty check (cardinality(columns) > 0)
);
