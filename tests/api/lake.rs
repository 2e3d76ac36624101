//! Generated lakes for job tests, and the expected find results computed from the
//! generated rows by plain Rust (not by Lethe's reader).
//!
//! `people` (Parquet, partitioned by `country`): `id` bigint, `email` string (nulls),
//! `name` string (dictionary), `account` decimal(12,2), `contact` struct<email,phone>
//! (nulls). Ids are unique and increase object by object, so id statistics prune.
//! `events` (gzip JSON Lines): `{"user": {"id": n, "email": s}, "kind": s}`.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

pub const COUNTRIES: [&str; 3] = ["de", "fr", "us"];
pub const OBJECTS_PER_PARTITION: i64 = 2;
pub const ROWS_PER_OBJECT: i64 = 3000;
pub const ROWS_PER_GROUP: usize = 1000;

/// One generated row of `people`.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub email: Option<String>,
    pub name: String,
    pub account_cents: i64,
    pub contact_email: Option<String>,
}

pub fn person(id: i64) -> Person {
    Person {
        id,
        email: (id % 17 != 0).then(|| format!("user{}@example.com", id % 500)),
        name: format!("name{}", id % 10),
        account_cents: (id % 1000) * 100 + 50,
        contact_email: (id % 13 != 0).then(|| format!("c{id}@example.com")),
    }
}

/// The codec of the n-th object: every codec appears.
pub fn codec(n: i64) -> Compression {
    match n % 4 {
        0 => Compression::SNAPPY,
        1 => Compression::ZSTD(ZstdLevel::default()),
        2 => Compression::GZIP(GzipLevel::default()),
        _ => Compression::UNCOMPRESSED,
    }
}

/// One `people` object: (partition country, key under the table, rows, bytes).
pub struct PeopleObject {
    pub country: &'static str,
    pub key: String,
    pub rows: Vec<Person>,
    pub bytes: Vec<u8>,
}

/// Every object of `people`, keys relative to the table location.
pub fn people() -> Vec<PeopleObject> {
    let mut out = Vec::new();
    let mut n = 0;
    for country in COUNTRIES {
        for part in 0..OBJECTS_PER_PARTITION {
            let rows: Vec<Person> = (n * ROWS_PER_OBJECT..(n + 1) * ROWS_PER_OBJECT)
                .map(person)
                .collect();
            out.push(PeopleObject {
                country,
                key: format!("country={country}/part-{part}.parquet"),
                bytes: people_parquet(&rows, codec(n)),
                rows,
            });
            n += 1;
        }
    }
    out
}

pub fn people_parquet(rows: &[Person], codec: Compression) -> Vec<u8> {
    let contact_fields = Fields::from(vec![
        Field::new("email", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("account", DataType::Decimal128(12, 2), false),
        Field::new("contact", DataType::Struct(contact_fields.clone()), true),
    ]));
    let mut account = Decimal128Builder::new();
    for r in rows {
        account.append_value(i128::from(r.account_cents));
    }
    let mut contact_email = StringBuilder::new();
    let mut phone = StringBuilder::new();
    for r in rows {
        contact_email.append_option(r.contact_email.clone());
        phone.append_option(r.contact_email.as_ref().map(|_| format!("+33{}", r.id)));
    }
    let contact_nulls: Vec<bool> = rows.iter().map(|r| r.contact_email.is_some()).collect();
    let contact = StructArray::new(
        contact_fields,
        vec![
            Arc::new(contact_email.finish()) as ArrayRef,
            Arc::new(phone.finish()),
        ],
        Some(contact_nulls.into()),
    );
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.email.clone()))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.name.clone()),
            )),
            Arc::new(account.finish().with_precision_and_scale(12, 2).unwrap()),
            Arc::new(contact),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

/// The queued matches of a test, in the queue's JSON form, and how they match rows.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    pub ints: Vec<i64>,
    /// Non-integral numeric ids, in cents (compared with `account`).
    pub cents: Vec<i64>,
    pub strings: Vec<String>,
    /// (country partition value or None, id, email or None): every given part must equal.
    pub composites: Vec<(Option<&'static str>, Option<i64>, Option<String>)>,
}

impl Matches {
    /// Does a `people` row of this partition match (columns id, email, account,
    /// contact.email; composites on country, id, email)?
    pub fn person(&self, country: &str, p: &Person) -> bool {
        let number = |n: i64| n == p.id || n * 100 == p.account_cents;
        let string =
            |s: &String| p.email.as_ref() == Some(s) || p.contact_email.as_ref() == Some(s);
        self.ints.iter().any(|&n| number(n))
            || self.cents.contains(&p.account_cents)
            || self.strings.iter().any(string)
            || self.composites.iter().any(|(c, id, email)| {
                c.is_none_or(|c| c == country)
                    && id.is_none_or(|id| id == p.id)
                    && email.as_ref().is_none_or(|e| p.email.as_ref() == Some(e))
            })
    }

    /// Does an `events` line match (columns user.id, user.email)?
    pub fn event(&self, e: &Event) -> bool {
        self.ints.contains(&e.user_id) || self.strings.contains(&e.email)
    }
}

/// One `events` line.
#[derive(Debug, Clone)]
pub struct Event {
    pub user_id: i64,
    pub email: String,
}

/// `events` objects: (key, events, gzip bytes).
pub fn events() -> Vec<(String, Vec<Event>, Vec<u8>)> {
    (0..2)
        .map(|n| {
            let events: Vec<Event> = (0..2000)
                .map(|i| Event {
                    user_id: (n * 2000 + i) % 3500,
                    email: format!("user{}@example.com", (n * 2000 + i) % 500),
                })
                .collect();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for e in &events {
                writeln!(
                    gz,
                    r#"{{"user": {{"id": {}, "email": "{}"}}, "kind": "click"}}"#,
                    e.user_id, e.email
                )
                .unwrap();
            }
            (
                format!("dt=2026-11-0{n}/events-{n}.json.gz"),
                events,
                gz.finish().unwrap(),
            )
        })
        .collect()
}
