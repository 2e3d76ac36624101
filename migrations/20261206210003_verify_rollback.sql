-- A rewrite that fails verification is rolled back: the version Lethe read is copied back
-- on top (conditional on Lethe's own version still being current). The copy's version id.
alter table job_object add column rollback_version_id text;
