//! The demo's lake on local disk, and the independent check of the result.
//!
//! `customers/country=XX/part-N.parquet` (snappy, 4 row groups of 5,000 rows, a bloom
//! filter on `email`) and `events/dt=YYYY-MM-DD/part-N.json.gz` (gzip JSON Lines with a
//! nested `user` object). Three subjects have a customer row and a few events each.
//!
//! The check reads every file back with the plain Arrow Parquet reader and a line-by-line
//! gzip reader — none of Lethe's find or forget code — and compares each file with what
//! was generated: no row of a subject may be left, every other row must be there, in
//! order, and files that held no subject row must be byte-for-byte unchanged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

/// SplitMix64's finaliser: deterministic pseudo-random values for generated data
/// (`lethe demo`'s lake, and the benchmark lakes, which run on the demo's server too).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const COUNTRIES: [&str; 3] = ["DE", "FR", "US"];
const DAYS: [&str; 3] = ["2026-11-01", "2026-11-02", "2026-11-03"];
const FILES_PER_PARTITION: usize = 2;
const CUSTOMERS_PER_FILE: i64 = 20_000;
const ROWS_PER_GROUP: usize = 5_000;
const EVENTS_PER_FILE: usize = 5_000;
const PLANS: [&str; 3] = ["free", "team", "enterprise"];
const EVENT_TYPES: [&str; 4] = ["page_view", "search", "add_to_cart", "purchase"];

/// A data subject of the demo.
#[derive(Debug, Clone)]
pub struct Subject {
    pub customer_id: i64,
    pub email: String,
    /// Queued by email (a string match) rather than by customer id (a numeric match).
    pub by_email: bool,
}

/// One generated row, as the check compares it: (customer id, email, rest of the row).
type Row = (i64, String, String);

/// What the demo generated: where, for whom, and every file's rows and digest.
pub struct DemoLake {
    pub root: PathBuf,
    pub subjects: Vec<Subject>,
    files: BTreeMap<PathBuf, (Vec<Row>, [u8; 32])>,
}

/// What the check found.
#[derive(Debug)]
pub struct CheckOutcome {
    pub files: usize,
    pub files_changed: usize,
    pub rows_left: usize,
    pub subject_rows_generated: usize,
}

fn email_of(customer_id: i64) -> String {
    format!("user{:08x}@example.net", mix(customer_id as u64) as u32)
}

fn customers_total() -> i64 {
    (COUNTRIES.len() * FILES_PER_PARTITION) as i64 * CUSTOMERS_PER_FILE
}

impl DemoLake {
    /// Files the generator writes (progress bars count them).
    pub const FILES: usize = (COUNTRIES.len() + DAYS.len()) * FILES_PER_PARTITION;

    /// Writes the lake under `root` (which must be empty or absent); `on_file` is called
    /// after each file.
    pub fn generate(root: &Path, mut on_file: impl FnMut(&Path)) -> anyhow::Result<Self> {
        // Customers in the first DE file, an FR file and the last US file.
        let subjects = vec![
            Subject {
                customer_id: 1_042,
                email: email_of(1_042),
                by_email: false,
            },
            Subject {
                customer_id: 47_311,
                email: email_of(47_311),
                by_email: false,
            },
            Subject {
                customer_id: 118_007,
                email: email_of(118_007),
                by_email: true,
            },
        ];
        let mut lake = Self {
            root: root.to_owned(),
            subjects,
            files: BTreeMap::new(),
        };
        let mut first_id = 1;
        for country in COUNTRIES {
            for n in 0..FILES_PER_PARTITION {
                let path = root.join(format!("customers/country={country}/part-{n}.parquet"));
                let rows = write_customers(&path, first_id)?;
                first_id += CUSTOMERS_PER_FILE;
                lake.record(path, rows, &mut on_file)?;
            }
        }
        for (d, day) in DAYS.iter().enumerate() {
            for n in 0..FILES_PER_PARTITION {
                let path = root.join(format!("events/dt={day}/part-{n}.json.gz"));
                let seed = (d * FILES_PER_PARTITION + n) as u64;
                let rows = write_events(&path, seed, &lake.subjects)?;
                lake.record(path, rows, &mut on_file)?;
            }
        }
        Ok(lake)
    }

    fn record(
        &mut self,
        path: PathBuf,
        rows: Vec<Row>,
        on_file: &mut impl FnMut(&Path),
    ) -> anyhow::Result<()> {
        let digest = file_digest(&path)?;
        on_file(&path);
        self.files.insert(path, (rows, digest));
        Ok(())
    }

    fn is_subject_row(&self, row: &Row) -> bool {
        self.subjects
            .iter()
            .any(|s| s.customer_id == row.0 || s.email == row.1)
    }

    /// Generated rows that belong to a subject.
    pub fn subject_rows(&self) -> usize {
        self.files
            .values()
            .flat_map(|(rows, _)| rows)
            .filter(|r| self.is_subject_row(r))
            .count()
    }

    /// Reads every file back independently and compares it with what was generated minus
    /// the subjects' rows. An error names the first file that differs.
    pub fn check(&self) -> anyhow::Result<CheckOutcome> {
        let mut outcome = CheckOutcome {
            files: 0,
            files_changed: 0,
            rows_left: 0,
            subject_rows_generated: self.subject_rows(),
        };
        for (path, (generated, digest)) in &self.files {
            let shown = path.strip_prefix(&self.root).unwrap_or(path).display();
            let now = if path.extension().is_some_and(|e| e == "parquet") {
                read_customers(path)?
            } else {
                read_events(path)?
            };
            let expected: Vec<&Row> = generated
                .iter()
                .filter(|r| !self.is_subject_row(r))
                .collect();
            let left = now.iter().filter(|r| self.is_subject_row(r)).count();
            anyhow::ensure!(
                left == 0,
                "{shown}: {left} rows of a subject are still there"
            );
            anyhow::ensure!(
                now.len() == expected.len() && now.iter().zip(&expected).all(|(a, b)| a == *b),
                "{shown}: holds {} rows, expected the {} generated rows without the subjects'",
                now.len(),
                expected.len()
            );
            let changed = file_digest(path)? != *digest;
            anyhow::ensure!(
                changed == (expected.len() != generated.len()),
                "{shown}: {} although it held {} subject rows",
                if changed {
                    "was rewritten"
                } else {
                    "is unchanged"
                },
                generated.len() - expected.len()
            );
            outcome.files += 1;
            outcome.files_changed += usize::from(changed);
            outcome.rows_left += now.len();
        }
        Ok(outcome)
    }
}

fn file_digest(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).into())
}

fn customers_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
    ]))
}

fn write_customers(path: &Path, first_id: i64) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(path.parent().expect("a file in a partition"))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_column_bloom_filter_enabled("email".into(), true)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path)?,
        customers_schema(),
        Some(props),
    )?;
    let ids: Vec<i64> = (first_id..first_id + CUSTOMERS_PER_FILE).collect();
    let names: Vec<String> = ids
        .iter()
        .map(|&i| format!("Customer {:05x}", mix(i as u64 ^ 7) % 0xfffff))
        .collect();
    let plans: Vec<&str> = ids
        .iter()
        .map(|&i| PLANS[(mix(i as u64 ^ 3) % 3) as usize])
        .collect();
    let emails: Vec<String> = ids.iter().map(|&i| email_of(i)).collect();
    let batch = RecordBatch::try_new(
        customers_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(&emails)),
            Arc::new(StringArray::from_iter_values(&names)),
            Arc::new(StringArray::from_iter_values(&plans)),
        ],
    )?;
    w.write(&batch)?;
    w.close()?;
    Ok(ids
        .iter()
        .zip(emails)
        .zip(names.iter().zip(&plans))
        .map(|((&id, email), (name, plan))| (id, email, format!("{name}|{plan}")))
        .collect())
}

fn read_customers(path: &Path) -> anyhow::Result<Vec<Row>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?.build()?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let emails = batch.column(1).as_string::<i32>();
        let names = batch.column(2).as_string::<i32>();
        let plans = batch.column(3).as_string::<i32>();
        for i in 0..batch.num_rows() {
            rows.push((
                ids.value(i),
                emails.value(i).to_owned(),
                format!("{}|{}", names.value(i), plans.value(i)),
            ));
        }
    }
    Ok(rows)
}

fn event_line(customer_id: i64, email: &str, kind: &str, at: &str) -> String {
    serde_json::json!({"user": {"id": customer_id, "email": email}, "type": kind, "at": at})
        .to_string()
}

fn write_events(path: &Path, seed: u64, subjects: &[Subject]) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(path.parent().expect("a file in a partition"))?;
    let mut rows = Vec::with_capacity(EVENTS_PER_FILE);
    for n in 0..EVENTS_PER_FILE as u64 {
        let r = mix(seed << 32 | n);
        // Subjects have events in every other file: about 3 lines in 900 are theirs.
        let customer_id = match subjects.get((r % 900) as usize) {
            Some(s) if seed.is_multiple_of(2) => s.customer_id,
            _ => 1 + (r >> 16) as i64 % customers_total(),
        };
        let kind = EVENT_TYPES[(r >> 8) as usize % EVENT_TYPES.len()];
        let at = format!(
            "T{:02}:{:02}:{:02}Z",
            (r >> 40) % 24,
            (r >> 34) % 60,
            n % 60
        );
        rows.push((customer_id, email_of(customer_id), format!("{kind}|{at}")));
    }
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(path)?, flate2::Compression::default());
    for (id, email, rest) in &rows {
        let (kind, at) = rest.split_once('|').expect("kind|at");
        writeln!(gz, "{}", event_line(*id, email, kind, at))?;
    }
    gz.finish()?;
    Ok(rows)
}

fn read_events(path: &Path) -> anyhow::Result<Vec<Row>> {
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(
        path,
    )?));
    let mut rows = Vec::new();
    for line in reader.lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
        rows.push((
            v["user"]["id"].as_i64().context("user.id")?,
            v["user"]["email"]
                .as_str()
                .context("user.email")?
                .to_owned(),
            format!("{}|{}", field("type"), field("at")),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_passes_only_when_exactly_the_subjects_rows_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let lake = DemoLake::generate(dir.path(), |_| {}).unwrap();
        assert!(lake.subject_rows() >= 6, "subjects have rows to erase");
        // Untouched, the subjects' rows are still there.
        let err = lake.check().unwrap_err().to_string();
        assert!(err.contains("rows of a subject are still there"), "{err}");

        // Erase them by hand (as Lethe would), then the check passes.
        for (path, (rows, _)) in &lake.files {
            let kept: Vec<&Row> = rows.iter().filter(|r| !lake.is_subject_row(r)).collect();
            if kept.len() == rows.len() {
                continue;
            }
            if path.extension().is_some_and(|e| e == "parquet") {
                let batch = RecordBatch::try_new(
                    customers_schema(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(kept.iter().map(|r| r.0))),
                        Arc::new(StringArray::from_iter_values(kept.iter().map(|r| &r.1))),
                        Arc::new(StringArray::from_iter_values(
                            kept.iter().map(|r| r.2.split('|').next().unwrap()),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            kept.iter().map(|r| r.2.split('|').nth(1).unwrap()),
                        )),
                    ],
                )
                .unwrap();
                let mut w = ArrowWriter::try_new(
                    std::fs::File::create(path).unwrap(),
                    batch.schema(),
                    None,
                )
                .unwrap();
                w.write(&batch).unwrap();
                w.close().unwrap();
            } else {
                let mut gz = flate2::write::GzEncoder::new(
                    std::fs::File::create(path).unwrap(),
                    flate2::Compression::default(),
                );
                for (id, email, rest) in kept {
                    let (kind, at) = rest.split_once('|').unwrap();
                    writeln!(gz, "{}", event_line(*id, email, kind, at)).unwrap();
                }
                gz.finish().unwrap();
            }
        }
        let outcome = lake.check().unwrap();
        assert_eq!(outcome.files, DemoLake::FILES);
        let generated: usize = lake.files.values().map(|(rows, _)| rows.len()).sum();
        assert_eq!(outcome.rows_left, generated - lake.subject_rows());
        assert!(outcome.files_changed >= 3 && outcome.files_changed < DemoLake::FILES);

        // One other row missing is caught too.
        let victim = lake.root.join("customers/country=FR/part-1.parquet");
        let batch = RecordBatch::try_new(
            customers_schema(),
            vec![
                Arc::new(Int64Array::from(vec![1_i64])),
                Arc::new(StringArray::from(vec![email_of(1)])),
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(StringArray::from(vec!["free"])),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&victim).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert!(lake.check().is_err());
    }
}
