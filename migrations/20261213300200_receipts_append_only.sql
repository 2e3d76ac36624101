-- Receipts and the keys that signed them are append-only for every role, as the audit
-- trail and its checkpoints are: the runtime role has no UPDATE or DELETE on them, and a
-- single-role deployment (the owner serving) cannot rewrite or drop one either without
-- first disabling these triggers, which the chain and the published JWKS then show.
create trigger receipt_no_update_or_delete
    before update or delete on receipt
    for each row execute function append_only();
create trigger receipt_no_truncate
    before truncate on receipt
    for each statement execute function append_only();
create trigger receipt_key_no_update_or_delete
    before update or delete on receipt_key
    for each row execute function append_only();
create trigger receipt_key_no_truncate
    before truncate on receipt_key
    for each statement execute function append_only();
