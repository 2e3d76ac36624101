-- Tables whose grants Lethe has applied. They stay governed after their last policy is
-- deleted, so the next apply revokes the grants no policy declares any more.
create table governed_table (
    database_name text not null,
    table_name text not null,
    created_at timestamptz not null default now(),
    constraint governed_table_pkey primary key (database_name, table_name)
);
