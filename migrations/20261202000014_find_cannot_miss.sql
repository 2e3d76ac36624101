-- The declared types of an object's partition keys (Glue type text, '' when untyped):
-- forget compares partition values by them exactly as find did.
alter table job_object add column partition_types text[];
