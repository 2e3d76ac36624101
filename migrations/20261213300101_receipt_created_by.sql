-- Who created the queue item a receipt accounts for, copied when the receipt is issued
-- (the item leaves the queue when its job succeeds; the receipt stays): a requester reads
-- the receipts of its own items only. Null for a receipt issued before this column whose
-- item had already left the queue (no requester sees it; operators and auditors do).
alter table receipt add column created_by text;

-- Receipts issued before this column, of items still queued.
update receipt r set created_by = q.created_by
from deletion_queue_item q
where q.deletion_queue_item_id = r.deletion_queue_item_id;
