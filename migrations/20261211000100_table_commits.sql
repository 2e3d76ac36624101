-- A table format's erasure (Apache Iceberg): forget writes each rewrite to a new data
-- file (`new_key`, never over the old one); one commit per data mapper makes the new
-- files the table's (`table_commit`: the metadata and snapshots before and after), and
-- its purge expires the snapshots that still reference the old files and deletes them
-- (`table_commit.purge`, each step recorded before it runs).
alter table job_object add column new_key text;
alter table job_data_mapper add column table_commit jsonb;
-- An Iceberg mapper may let the purge expire snapshots a tag or a branch other than
-- `main` keeps when they still hold erased rows (removing those references).
alter table data_mapper add column expire_tagged_snapshots boolean not null default false;
