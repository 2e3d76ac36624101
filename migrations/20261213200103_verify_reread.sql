-- Receipt evidence: verify's own re-read of the version forget wrote, apart from what
-- forget expected (`rows_after`): the rows it counted, the bytes the store holds of that
-- version (checked equal to the bytes uploaded) and when it found no match left.
-- rows verify counted in the new version (null until a verification passed)
alter table job_object add column verified_rows bigint;
-- size of the new version as the store holds it when verify re-read it
alter table job_object add column verified_bytes bigint;
-- when verify found the new version clean
alter table job_object add column verified_at timestamptz;
