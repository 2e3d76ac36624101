-- Receipt evidence: what a mapper's find read, beside `objects_searched` (every version it
-- searched, current and noncurrent): how many of those were noncurrent versions, and the
-- bytes its ranged GETs fetched from the store (a Parquet footer and the column chunks it
-- needed; every byte of a streamed object). Verify's and a table commit's reads are not
-- counted.
alter table job_data_mapper add column noncurrent_searched bigint not null default 0;
alter table job_data_mapper add column bytes_read bigint not null default 0;
