-- Data mappers may read CSV and Avro objects.
alter table data_mapper drop constraint data_mapper_format_known;
alter table data_mapper add constraint data_mapper_format_known
    check (format in ('parquet', 'json', 'csv', 'avro'));
