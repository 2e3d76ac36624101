-- The work queue shared by every `lethe serve` / `lethe worker` process. A task is claimed
-- with `for update skip locked` and a lease; a worker that dies loses its lease and the
-- task is claimed again (each claim counts as an attempt).
create table task (
    task_id bigint generated always as identity,
    -- what to run, e.g. find.objects; the handler registered under this name runs it
    kind text not null,
    -- the handler's input; never holds plain match ids
    payload jsonb not null default '{}',
    state text not null default 'queued',
    attempts integer not null default 0,
    max_attempts integer not null default 5,
    -- not to be claimed before this time (retry backoff)
    run_at timestamptz not null default now(),
    -- the worker holding the task, and until when (extended by heartbeats)
    lease_owner text,
    lease_until timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint task_pkey primary key (task_id),
    constraint task_state_known check (state in ('queued', 'running', 'succeeded', 'failed')),
    constraint task_max_attempts_positive check (max_attempts > 0)
);

create index task_claimable_idx on task (run_at, task_id) where state = 'queued';
create index task_lease_idx on task (lease_until) where state = 'running';
