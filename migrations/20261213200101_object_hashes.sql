-- Receipt evidence: the SHA-256 of the whole object version forget rewrote and of the one
-- it wrote, each computed over the local file (the download before the rewrite, the
-- rewrite before the upload), so an auditor can match them with a plain read of S3.
-- lowercase hex SHA-256 of every byte of the version rewritten (`read_version_id`, else `version_id`)
alter table job_object add column sha256_before text;
-- lowercase hex SHA-256 of every byte of the version written (`new_version_id`, at `new_key` when set)
alter table job_object add column sha256_after text;
alter table job_object add constraint job_object_sha256_before_hex
    check (sha256_before ~ '^[0-9a-f]{64}$');
alter table job_object add constraint job_object_sha256_after_hex
    check (sha256_after ~ '^[0-9a-f]{64}$');
