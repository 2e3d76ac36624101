-- Backups the operator declares (AWS Backup vaults, snapshots of the lake kept elsewhere):
-- Lethe cannot see or erase them, so every receipt names each as residue, with the date
-- it ends (the job's end plus the backup's retention). A JSON array of
-- {"name", "retention_days", "description"?}, checked by the API.
alter table setting add column backups jsonb not null default '[]';
alter table setting add constraint setting_backups_array check (jsonb_typeof(backups) = 'array');
