-- Secrets Lethe generates for itself on first start (e.g. the default HS256 signing key
-- when none is configured). Never exposed through the API.
create table server_secret (
    name text not null,
    -- raw key material
    value bytea not null,
    created_at timestamptz not null default now(),
    constraint server_secret_pkey primary key (name)
);
