-- Every version is searched (issue 22). Find lists versions: a version that was not its
-- key's current one when find listed it (a newer version or a delete marker on top) is
-- recorded `noncurrent`, one row per version holding matches. It is never rewritten: its
-- forget state is `old_version`, and cleanup deletes exactly it when the mapper deletes
-- old versions; otherwise (or when Object Lock forbids it) it is kept and listed in
-- the accounts of the subjects it holds, with the date it ends when known.
alter table job_object add column noncurrent boolean not null default false;
-- When it stopped being current (its successor's last-modified time): lifecycle rules
-- count their NoncurrentDays from it.
alter table job_object add column noncurrent_since timestamptz;
-- The version forget rewrote when it was not the one find read (someone wrote the key
-- between find and forget): the version find read keeps its rows and is deleted by
-- cleanup like any old version (`version_id` stays the version find read).
alter table job_object add column read_version_id text;
-- Versions holding (or possibly holding) the rows of this object's subjects that cleanup
-- did not delete: [{version_id, reason, until, hold}] (until: when it ends, if known;
-- hold: no end date, e.g. an Object Lock legal hold).
alter table job_object add column versions_kept jsonb not null default '[]';
-- A version written on top of Lethe's after it was verified, found holding matching
-- rows at cleanup (by a writer working from data read before the rewrite).
alter table job_object add column newer_holds boolean not null default false;
-- The bucket a replication rule copies this object's key to (version deletes are not
-- replicated: the replica keeps the rows), found at cleanup.
alter table job_object add column replicated_to text;

alter table job_object drop constraint job_object_forget_state_known;
alter table job_object add constraint job_object_forget_state_known check (forget_state in
    ('found', 'written', 'unchanged', 'skipped', 'failed', 'verified', 'verify_failed',
     'old_version'));

-- One row per version: a key's current version and its old ones are recorded apart.
alter table job_object drop constraint job_object_unique;
create unique index job_object_unique on job_object
    (job_id, data_mapper_id, bucket, key, (coalesce(version_id, '')));

alter table job add column old_versions_listed bigint not null default 0;
alter table job add column old_versions_matched bigint not null default 0;

-- `retained`: removed from every current version, but old versions Lethe may not delete
-- (the mapper keeps old versions, Object Lock retention) still hold the rows, each named
-- in the account with the date it ends when known. The item leaves the queue.
alter table job_match drop constraint job_match_status_known;
alter table job_match add constraint job_match_status_known
    check (status in ('erased', 'retained', 'not_found', 'kept', 'matched'));
