-- Run once by the Postgres image at its first start (docker-entrypoint-initdb.d): the
-- login `serve` and `worker` connect as. The first `lethe migrate` (as the owner role,
-- `lethe`) gives it its privileges: INSERT and SELECT only on the audit trail, the
-- checkpoints and the receipts; ordinary DML elsewhere; ownership of the job tables it
-- vacuums. Change the password with the DATABASE_URL of docker-compose.yml.
create role lethe_runtime login password 'lethe-runtime';
