-- Objects with a `_` or `.` folder or name below the table or partition location are
-- not the table's data (Athena does not read them): find records them `hidden` (never
-- searched, never written, keeping no item queued).
alter table job_object drop constraint job_object_status_known;
alter table job_object add constraint job_object_status_known
    check (status in ('matched', 'failed', 'not_searchable', 'skipped', 'leftover', 'hidden'));
