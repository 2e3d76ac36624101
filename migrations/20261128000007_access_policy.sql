-- Declared Lake Formation grants: who may read which columns of which tables.
create table access_policy (
    access_policy_id text not null,
    -- IAM role / user ARN or AWS account id
    principal text not null,
    -- [{"database":..,"table":..|"*"}]
    tables jsonb not null,
    -- "all_columns" | "non_pii_columns" | {"columns":[..]}
    access jsonb not null,
    permissions text[] not null,
    grant_option boolean not null default false,
    created_by text not null,
    updated_by text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint access_policy_pkey primary key (access_policy_id)
);

-- What the reconciler found each time it compared the declaration with Lake Formation.
create table grant_drift (
    grant_drift_id bigint generated always as identity,
    -- the plan: {"to_grant": [..], "to_revoke": [..], "warnings": [..]}
    drift jsonb not null,
    -- number of grants to add plus grants to revoke
    drifted_grants integer not null,
    -- why the check could not run, when it could not
    error text,
    created_at timestamptz not null default now(),
    constraint grant_drift_pkey primary key (grant_drift_id)
);
