-- PII classification of catalog columns. Rows outlive the columns they name: a column
-- that vanished from Glue is reported, never silently dropped.
create table column_classification (
    database_name text not null,
    table_name text not null,
    -- lowercased column name, partition key, or dotted path of a nested field
    column_name text not null,
    classification text not null,
    -- free text, e.g. contact.email
    category text,
    updated_by text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint column_classification_pkey primary key (database_name, table_name, column_name),
    constraint column_classification_known check (classification in ('pii', 'non_pii', 'unclassified'))
);
