-- A real job that an operator cancels owes its items their receipts (`kept`), issued once
-- its last running task has ended (`jobs::advance::settle_cancelled`), so they state what
-- those tasks did. Set by the cancel, cleared when the receipts are issued.
alter table job add column receipts_due boolean not null default false;
create index job_receipts_due_idx on job (job_id) where receipts_due;
