//! Find over an object store: fetch only what the data plane needs with ranged reads —
//! the footer, then bloom filters and match-column chunks of the row groups statistics
//! cannot exclude — and run `lakefile` on those bytes. Objects of the streamed formats
//! (JSON Lines, CSV, Avro) are pushed through their format's search in 8 MiB ranged reads.

use std::io::Write;

use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::domain::field_ids::FieldIds;
use crate::lakefile::format::{Matching, RecordError, Records, Search};
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::parquet::find::{self as parquet_find, FindError, FindReport};
use crate::lakefile::parquet::sparse::{SparseObject, footer_len};
use crate::storage::{ObjectStore, StorageError};

/// First read from the end of an object: most footers fit, saving a second request.
const TAIL_GUESS: u64 = 64 * 1024;

/// Why one object could not be searched. Storage errors may be retried; the others mean
/// the object is corrupt or does not fit the mapper (fail that object only).
#[derive(Debug, thiserror::Error)]
pub enum ObjectFindError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Parquet(#[from] FindError),
    #[error(transparent)]
    Records(#[from] RecordError),
}

/// The object to search.
#[derive(Debug, Clone)]
pub struct ObjectRef<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub size: u64,
}

/// Reads a Parquet object's footer with one ranged read (two when it is longer than the
/// guess). Returns the bytes held so far and the parsed metadata.
pub async fn read_footer(
    store: &dyn ObjectStore,
    object: &ObjectRef<'_>,
) -> Result<(SparseObject, ParquetMetaData), ObjectFindError> {
    let size = object.size;
    let mut sparse = SparseObject::new(size);
    let tail_start = size.saturating_sub(TAIL_GUESS);
    let tail = store
        .get_range(
            object.bucket,
            object.key,
            object.version_id,
            tail_start..size,
        )
        .await?;
    let footer = footer_len(&tail).map_err(FindError::from)?;
    if footer > size {
        return Err(FindError::from(parquet::errors::ParquetError::General(
            "footer longer than the object".to_owned(),
        ))
        .into());
    }
    sparse.insert(tail_start, tail);
    if !sparse.has(&(size - footer..size)) {
        let rest = store
            .get_range(
                object.bucket,
                object.key,
                object.version_id,
                size - footer..tail_start,
            )
            .await?;
        sparse.insert(size - footer, rest);
    }
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(&sparse)
        .map_err(FindError::from)?;
    Ok((sparse, metadata))
}

/// The report of an object whose every row matches (a composite match on partition keys
/// alone): read from the footer, no data decoded.
pub async fn every_row_parquet(
    store: &dyn ObjectStore,
    object: &ObjectRef<'_>,
) -> Result<(FindReport, u64), ObjectFindError> {
    let (sparse, metadata) = read_footer(store, object).await?;
    parquet_find::check_row_counts(&metadata)?;
    let groups = metadata.num_row_groups();
    let rows = metadata.file_metadata().num_rows().max(0) as u64;
    let report = FindReport {
        rows_total: rows,
        rows_matched: rows,
        row_groups_total: groups,
        matching_row_groups: (0..groups)
            .filter(|&rg| metadata.row_group(rg).num_rows() > 0)
            .collect(),
        ..FindReport::default()
    };
    Ok((report, sparse.held()))
}

/// Searches one Parquet object with ranged reads, one row group at a time: the footer,
/// then for each row group statistics cannot exclude, its match-column chunks and bloom
/// filters, searched and dropped before the next row group is fetched (memory: the footer
/// plus one row group's match columns). The match columns are found by their field-id
/// paths when given. Returns the report and the bytes read.
pub async fn find_parquet(
    store: &dyn ObjectStore,
    object: &ObjectRef<'_>,
    columns: (&[String], Option<&FieldIds>),
    ids: &MatchSet,
) -> Result<(FindReport, u64), ObjectFindError> {
    let size = object.size;
    let (footer, metadata) = read_footer(store, object).await?;
    let metadata = std::sync::Arc::new(metadata);
    let mut plan = parquet_find::FindPlan::new(&metadata, columns, ids)?;
    plan.attribute = true;
    let mut report = plan.report(&metadata);
    let mut read = footer.held();
    if plan.candidates.is_empty() || ids.is_empty() {
        return Ok((report, read));
    }
    let arrow_meta = parquet_find::arrow_metadata(metadata.clone())?;
    for &rg in &plan.candidates {
        let mut part = footer.clone();
        for range in plan.ranges(&metadata, rg) {
            if range.end > size || range.start > range.end {
                return Err(FindError::from(parquet::errors::ParquetError::General(
                    "column chunk outside the object".to_owned(),
                ))
                .into());
            }
            if !part.has(&range) {
                let bytes = store
                    .get_range(object.bucket, object.key, object.version_id, range.clone())
                    .await?;
                read += bytes.len() as u64;
                part.insert(range.start, bytes);
            }
        }
        let found = cpu_bound(|| {
            parquet_find::guarded(|| {
                parquet_find::find_in_row_group(part, &metadata, &arrow_meta, &plan, rg, ids)
            })
        })?;
        report.add(rg, &found);
    }
    Ok((report, read))
}

/// Runs CPU-bound work without stalling other tasks of a multi-threaded runtime (inline
/// on a current-thread runtime, where blocking in place is not possible).
pub fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Bytes fetched per ranged read when streaming an object.
const STREAM_CHUNK: u64 = 8 * 1024 * 1024;

/// Searches one object as its format says: Parquet by ranged reads of what it needs, the
/// streamed formats (JSON Lines, CSV, Avro, decompressed as their key says) by pushing
/// every byte through the format's search in 8 MiB ranged reads (memory holds one chunk
/// and one partial record, whatever the object size or how far it inflates). Returns
/// what was found and the bytes read.
pub async fn search_object(
    store: &dyn ObjectStore,
    object: &ObjectRef<'_>,
    records: &Records,
    m: Matching<'_>,
) -> Result<(FindReport, u64), ObjectFindError> {
    let search = records.search(object.key, m)?;
    let Search::Streamed(mut search) = search else {
        return if m.every_row {
            every_row_parquet(store, object).await
        } else {
            find_parquet(store, object, (m.columns, m.field_ids), m.ids).await
        };
    };
    let mut offset = 0;
    while offset < object.size {
        let end = (offset + STREAM_CHUNK).min(object.size);
        let bytes = store
            .get_range(object.bucket, object.key, object.version_id, offset..end)
            .await?;
        search.write_all(&bytes).map_err(RecordError::from_io)?;
        offset = end;
    }
    let found = search.finish()?;
    let report = FindReport {
        rows_total: found.records_total,
        rows_matched: found.records_matched,
        rows_by_match: found.rows_by_match,
        ..Default::default()
    };
    Ok((report, object.size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES as MAX_LINE;
    use crate::storage::file::FileStore;
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use serde_json::json;
    use std::sync::Arc;

    fn lake() -> (std::path::PathBuf, u64) {
        let root = std::env::temp_dir().join(format!("lethe-find-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("t")).unwrap();
        let n = 40_000i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("email", DataType::Utf8, false),
            Field::new("payload", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("u{}@x", (i * 7) % n)),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("{i:x}-{}", "p".repeat(200))),
                )),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(10_000))
            .set_bloom_filter_enabled(true)
            .build();
        let file = std::fs::File::create(root.join("t/part-0.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let size = std::fs::metadata(root.join("t/part-0.parquet"))
            .unwrap()
            .len();
        (root, size)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn ranged_find_reads_only_what_it_needs_and_agrees_with_a_whole_file_read() {
        let (root, size) = lake();
        let store = FileStore::new(&root);
        let object = ObjectRef {
            bucket: "b",
            key: "t/part-0.parquet",
            version_id: None,
            size,
        };
        let ids = MatchSet::from_values(&[json!(25_000), json!("u7@x")]);
        let columns = vec!["id".to_owned(), "email".to_owned()];
        let (ranged, read) = find_parquet(&store, &object, (&columns, None), &ids)
            .await
            .unwrap();
        let whole = parquet_find::find(
            crate::lakefile::parquet::local::SharedFile::open(&root.join("t/part-0.parquet"))
                .unwrap(),
            &columns,
            &ids,
        )
        .unwrap();
        assert_eq!(ranged, whole);
        assert_eq!(ranged.rows_matched, 2);
        assert!(read < size, "read {read} of {size} bytes");
        // Only the id column can prune; a numeric id alone reads one row group's chunks.
        let (narrow, narrow_read) = find_parquet(
            &store,
            &object,
            (&["id".to_owned()], None),
            &MatchSet::from_values(&[json!(25_000)]),
        )
        .await
        .unwrap();
        assert_eq!(narrow.matching_row_groups, [2]);
        assert!(narrow_read < read);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn json_lines_stream_plain_and_compressed_and_report_malformed_lines() {
        use crate::lakefile::format::compression::Compression;
        use std::io::Write;
        let root = std::env::temp_dir().join(format!("lethe-find-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let body: String = (0..5000)
            .map(|i| format!("{{\"user\": {{\"id\": {i}}}, \"name\": \"n{}\"}}\n", i % 10))
            .collect();
        std::fs::write(root.join("a.json"), &body).unwrap();
        for (key, c) in [
            ("a.json.gz", Compression::Gzip),
            ("a.json.zst", Compression::Zstd),
            ("a.json.bz2", Compression::Bzip2),
        ] {
            let mut e = c.encoder(Vec::new()).unwrap();
            e.write_all(body.as_bytes()).unwrap();
            std::fs::write(root.join(key), e.finish().unwrap()).unwrap();
        }
        std::fs::write(root.join("bad.json"), "{\"a\": 1}\nnot json\n").unwrap();
        let store = FileStore::new(&root);
        let ids = MatchSet::from_values(&[json!(42), json!("n3")]);
        let columns = vec!["user.id".to_owned(), "name".to_owned()];
        let m = Matching {
            columns: &columns,
            ids: &ids,
            every_row: false,
            max_record: MAX_LINE,
            field_ids: None,
            drop_rows: &[],
        };
        let records = Records::JsonLines;
        for key in ["a.json", "a.json.gz", "a.json.zst", "a.json.bz2"] {
            let size = std::fs::metadata(root.join(key)).unwrap().len();
            let object = ObjectRef {
                bucket: "b",
                key,
                version_id: None,
                size,
            };
            let (report, read) = search_object(&store, &object, &records, m).await.unwrap();
            assert_eq!(
                (report.rows_total, report.rows_matched, read),
                (5000, 501, size),
                "{key}"
            );
        }
        let bad = ObjectRef {
            bucket: "b",
            key: "bad.json",
            version_id: None,
            size: 19,
        };
        assert!(matches!(
            search_object(&store, &bad, &records, m).await,
            Err(ObjectFindError::Records(RecordError::Json(
                crate::lakefile::jsonl::find::JsonFindError::Malformed { line: 2 }
            )))
        ));
        // A gzip object cut short fails; it is never read as the lines before the cut.
        let gz = std::fs::read(root.join("a.json.gz")).unwrap();
        std::fs::write(root.join("cut.json.gz"), &gz[..gz.len() / 2]).unwrap();
        let cut = ObjectRef {
            bucket: "b",
            key: "cut.json.gz",
            version_id: None,
            size: (gz.len() / 2) as u64,
        };
        assert!(matches!(
            search_object(&store, &cut, &records, m).await,
            Err(ObjectFindError::Records(RecordError::Compression(_)))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn corrupt_and_missing_objects_fail_with_the_right_error() {
        let root = std::env::temp_dir().join(format!("lethe-find-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("bad.parquet"), b"this is not parquet at all").unwrap();
        let store = FileStore::new(&root);
        let ids = MatchSet::from_values(&[json!(1)]);
        let bad = ObjectRef {
            bucket: "b",
            key: "bad.parquet",
            version_id: None,
            size: 26,
        };
        assert!(matches!(
            find_parquet(&store, &bad, (&["id".to_owned()], None), &ids).await,
            Err(ObjectFindError::Parquet(_))
        ));
        let gone = ObjectRef {
            bucket: "b",
            key: "gone.parquet",
            version_id: None,
            size: 100,
        };
        assert!(matches!(
            find_parquet(&store, &gone, (&["id".to_owned()], None), &ids).await,
            Err(ObjectFindError::Storage(StorageError::NotFound))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }
}
