-- An object under a partitioned table's location in no partition (Athena does not read
-- it) is searched but never rewritten: recorded `skipped` with its reason, and the
-- items it holds stay queued ("rows outside the table's partitions").
alter table job_object add column outside_partitions boolean not null default false;
