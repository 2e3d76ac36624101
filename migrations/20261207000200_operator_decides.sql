-- No real erasure without an operator's decision (issue 23): the scheduler starts a job
-- on its own for a near deadline only over mappers an operator enabled for it, and only
-- over the items whose deadline is near; otherwise it raises an alert (an audit row, a
-- metric), at most once an hour.
alter table data_mapper add column automatic_jobs boolean not null default false;
alter table scheduler_state add column deadline_alerted_at timestamptz;
