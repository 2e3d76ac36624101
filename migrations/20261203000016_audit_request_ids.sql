-- The server names every request (`request_id`); the id a client sent, if any, is kept
-- beside it so a caller can find its own calls, but it is never trusted as the id.
alter table audit_event add column client_request_id text
    constraint audit_event_client_request_id_length check (length(client_request_id) <= 128);

-- A job's report is the evidence of what happened to each subject; it is kept at least a
-- month (the time a controller has to answer a request), so settings cannot shorten that.
update setting set report_retention_days = 30 where report_retention_days < 30;
alter table setting drop constraint setting_report_retention_days_range;
alter table setting add constraint setting_report_retention_days_range
    check (report_retention_days between 30 and 3650);
