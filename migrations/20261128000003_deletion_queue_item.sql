create table deletion_queue_item (
    -- UUIDv7: time-ordered, so keyset pagination on it lists oldest first
    deletion_queue_item_id uuid not null,
    -- the subject identifier: a JSON string or number (simple), or
    -- [{"column":..,"value":..}] (composite). Plain text by necessity; it leaves
    -- the database when the job that processes it succeeds.
    match_id jsonb not null,
    match_type text not null,
    -- data mappers this item applies to; empty = all
    data_mappers text[] not null default '{}',
    deadline timestamptz not null,
    -- caller's ticket / request reference
    reference text,
    created_by text not null,
    created_at timestamptz not null default now(),
    constraint deletion_queue_item_pkey primary key (deletion_queue_item_id),
    constraint deletion_queue_item_match_type_known check (match_type in ('simple', 'composite')),
    constraint deletion_queue_item_composite_has_one_mapper
        check (match_type = 'simple' or cardinality(data_mappers) = 1)
);

create index deletion_queue_item_deadline_idx on deletion_queue_item (deadline, deletion_queue_item_id);
create index deletion_queue_item_data_mappers_idx on deletion_queue_item using gin (data_mappers);
