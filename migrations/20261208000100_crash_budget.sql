-- A crash is not a failure: a task whose worker died (its lease expired) runs again
-- without spending an attempt; `crashes` counts the workers lost in a row while running
-- it (reset when the task records progress), and a task over the crash budget (a poison
-- task: it kills its worker) ends `failed`, named in a job event.
alter table task
    add column crashes integer not null default 0,
    add column crashed_on text[] not null default '{}';
