//! `lethe bench lake`: find over a generated local lake through the job engine's object
//! path (ranged reads over the `file` store, footers, bloom filters, match columns), with
//! and without statistics pruning, for 1, 100 and 100,000 match ids. Prints MB/s and
//! objects/s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures_util::{StreamExt, stream};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::demo::lake::mix;
use crate::jobs::find::{ObjectRef, find_parquet};
use crate::lakefile::match_set::MatchSet;
use crate::storage::file::FileStore;
use crate::storage::{ObjectMeta, ObjectStore, list_all};

/// Row groups per object.
const ROW_GROUPS: usize = 16;
/// Bytes a generated row takes in the file, roughly (sizes objects).
const ROW_BYTES: usize = 47;

/// Writes `objects` Parquet files of about `object_mb` MB, 16 row groups each: `id`
/// (sorted across the lake), `email` (random, bloom filter), `payload` (filler).
fn generate(
    dir: &Path,
    objects: usize,
    object_mb: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let rows_per_group = object_mb * 1_000_000 / ROW_BYTES / ROW_GROUPS;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(rows_per_group))
        .set_column_bloom_filter_enabled("email".into(), true)
        .build();
    let mut next_id = 0i64;
    for n in 0..objects {
        let file = std::fs::File::create(dir.join(format!("part-{n:05}.parquet")))?;
        let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))?;
        for _ in 0..ROW_GROUPS {
            let ids: Vec<i64> = (next_id..next_id + rows_per_group as i64).collect();
            next_id += rows_per_group as i64;
            let emails = ids
                .iter()
                .map(|&i| format!("u{:x}@example.com", mix(i as u64) % 50_000_000));
            let payload = ids.iter().map(|&i| {
                format!(
                    "{:016x}{:016x}{:016x}{:016x}",
                    mix(i as u64 ^ 1),
                    mix(i as u64 ^ 2),
                    mix(i as u64 ^ 3),
                    i
                )
            });
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(StringArray::from_iter_values(emails)),
                    Arc::new(StringArray::from_iter_values(payload)),
                ],
            )?;
            w.write(&batch)?;
            w.flush()?;
        }
        w.close()?;
        progress.inc(1);
    }
    Ok(next_id as u64)
}

/// Generates the lake under `dir` unless it is there, then runs the find passes.
pub async fn run(
    dir: &PathBuf,
    size_mb: usize,
    object_mb: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let objects = size_mb.div_ceil(object_mb).max(1);
    let rows = lake_rows(dir, objects, object_mb).await?;
    let store = FileStore::new(dir);
    let listed: Vec<_> = list_all(&store, "", "", false)
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .collect();
    let lake_bytes: u64 = listed.iter().map(|o| o.size).sum();
    println!(
        "lake: {} objects, {:.0} MB, {rows} rows; concurrency {concurrency}",
        listed.len(),
        lake_bytes as f64 / 1e6
    );
    println!(
        "{:>9} {:>8} {:>9} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "match ids", "pruning", "time s", "MB/s", "objects/s", "MB read", "RGs scanned", "rows"
    );
    for count in [1usize, 100, 100_000] {
        let ids: Vec<Value> = (0..count as u64)
            .map(|i| Value::from((mix(i ^ 0xabc) % rows) as i64))
            .collect();
        for pruning in [true, false] {
            let set = MatchSet::from_values(&ids);
            let set = Arc::new(if pruning { set } else { set.without_pruning() });
            let start = Instant::now();
            let pass = find_all(&store, &listed, set, concurrency).await?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{count:>9} {:>8} {secs:>9.3} {:>10.0} {:>10.1} {:>10.1} {:>12} {:>9}",
                if pruning { "on" } else { "off" },
                lake_bytes as f64 / 1e6 / secs,
                listed.len() as f64 / secs,
                pass.read as f64 / 1e6,
                pass.scanned,
                pass.matched,
            );
        }
    }
    Ok(())
}

/// The rows of the lake under `dir`, generated first unless its marker is there.
async fn lake_rows(dir: &Path, objects: usize, object_mb: usize) -> anyhow::Result<u64> {
    let marker = dir.join("_LETHE_BENCH");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        return Ok(text.trim().parse()?);
    }
    eprintln!(
        "generating {objects} objects of ~{object_mb} MB under {}",
        dir.display()
    );
    let progress = indicatif::ProgressBar::new(objects as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} objects {eta}")
            .expect("a valid template"),
    );
    let rows = tokio::task::spawn_blocking({
        let (dir, progress) = (dir.to_path_buf(), progress.clone());
        move || generate(&dir, objects, object_mb, &progress)
    })
    .await??;
    progress.finish_and_clear();
    std::fs::write(&marker, rows.to_string())?;
    Ok(rows)
}

/// What one find pass over the lake read, scanned and matched.
struct Pass {
    read: u64,
    scanned: usize,
    matched: u64,
}

/// Finds `set` in every object of `listed`, `concurrency` at once.
async fn find_all(
    store: &FileStore,
    listed: &[ObjectMeta],
    set: Arc<MatchSet>,
    concurrency: usize,
) -> anyhow::Result<Pass> {
    let reports: Vec<_> = stream::iter(listed.to_vec())
        .map(|o| {
            let set = set.clone();
            let store = store.clone();
            async move {
                let object = ObjectRef {
                    bucket: "",
                    key: &o.key,
                    version_id: None,
                    size: o.size,
                };
                find_parquet(
                    &store as &dyn ObjectStore,
                    &object,
                    (&["id".to_owned()], None),
                    &set,
                )
                .await
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut pass = Pass {
        read: 0,
        scanned: 0,
        matched: 0,
    };
    for r in reports {
        let (r, bytes) = r?;
        pass.read += bytes;
        pass.scanned += r.row_groups_total
            - r.row_groups_pruned_by_statistics
            - r.row_groups_pruned_by_bloom_filter;
        pass.matched += r.rows_matched;
    }
    Ok(pass)
}
