-- An Iceberg data file's rewrite leaves out the rows the table's position delete files
-- delete (they are still in the file): which delete files it applied, so that the commit
-- refuses a rewrite a delete file committed since would make wrong, and retires the
-- delete files whose every data file the new snapshot replaces.
alter table job_object add column deletes_applied text[] not null default '{}';
