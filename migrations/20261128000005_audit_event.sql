-- Append-only record of every mutating call. Never holds match ids.
create table audit_event (
    audit_event_id bigint generated always as identity,
    -- the token subject that made the call
    actor text not null,
    -- e.g. data_mapper.create, queue.add, settings.update
    action text not null,
    target_type text not null,
    target_id text,
    request_id text,
    -- counts and other non-sensitive facts about the change
    details jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint audit_event_pkey primary key (audit_event_id)
);

create index audit_event_actor_idx on audit_event (actor, audit_event_id);
create index audit_event_action_idx on audit_event (action, audit_event_id);
create index audit_event_created_at_idx on audit_event (created_at);
