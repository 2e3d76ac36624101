//! An Apache Iceberg table registered in Glue (`table_type=ICEBERG`, `metadata_location`)
//! as a source: its objects are the data files its snapshots reference, read from the
//! metadata Glue points at (`lakefile::iceberg`): the current snapshot's and every older
//! one's still in the metadata, since each holds its rows until it is expired. They are
//! found by listing the table's location with every version (so old versions of a data
//! file are searched as for plain tables); any other object there (the metadata itself,
//! orphans no snapshot references) is not the table's and is counted so, never searched.
//!
//! What a search cannot cover exactly is refused before anything is searched (see
//! `lakefile::iceberg`), and so is a data file outside the table's location. The match
//! columns are found in each data file by their field ids in the current schema
//! (`lakefile::iceberg::field_ids`, recorded by find for the job's later tasks), so a
//! column renamed since a file was written is found there too. An erasure is committed by
//! `jobs::table_commit` (a copy-on-write snapshot through Glue) and finished by
//! `jobs::table_purge` (the snapshots still holding the old files expired, the files and
//! their versions deleted).

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::iceberg_files::{read_whole, s3};
use super::plain::{Layout, PlainTable};
use super::{ListAt, SourceError, SourcePage, TableSource};
use crate::domain::field_ids::FieldIds;
use crate::domain::partition::PartitionKey;
use crate::lakefile::iceberg::field_ids::field_ids;
use crate::lakefile::iceberg::{
    ManifestSource, Referenced, TableMetadata, manifest_entries, manifest_list,
};
use crate::lakefile::parquet::sparse::footer_len;
use crate::storage::{ObjectMeta, Place, Stores};

/// The table's location listed as an unpartitioned table, and the data files its
/// snapshots reference (`s3://bucket/key`).
pub(super) struct IcebergTable {
    plain: PlainTable,
    data_files: BTreeSet<String>,
    /// The match columns' field-id paths in the current schema.
    field_ids: FieldIds,
}

/// Reads the table's metadata from `metadata_location` down to its data files.
pub(super) async fn resolve(
    stores: &Stores,
    (database, table): (&str, &str),
    metadata_location: &str,
    columns: &[String],
) -> Result<IcebergTable, SourceError> {
    let refused =
        |why: String| SourceError::Refused(format!("Iceberg table {database}.{table}: {why}"));
    let metadata =
        TableMetadata::parse(&read_whole(stores, metadata_location).await?).map_err(refused)?;
    let field_ids = field_ids(&metadata, columns).map_err(refused)?;
    let mut referenced = Referenced::default();
    let mut lists = BTreeSet::new();
    for source in metadata.manifest_sources() {
        let manifests = match source {
            ManifestSource::Manifests(paths) => paths,
            ManifestSource::List(list) => {
                if !lists.insert(list.clone()) {
                    continue;
                }
                let files = manifest_list(&read_whole(stores, &list).await?).map_err(refused)?;
                files.into_iter().map(|m| m.path).collect()
            }
        };
        for manifest in manifests {
            if referenced.manifests.contains(&manifest) {
                continue;
            }
            let entries =
                manifest_entries(&read_whole(stores, &manifest).await?).map_err(refused)?;
            referenced.add(&manifest, entries).map_err(refused)?;
        }
    }
    for delete_file in &referenced.position_deletes {
        refuse_deleted_rows(stores, delete_file)
            .await
            .map_err(refused)?;
    }
    let location = format!("{}/", metadata.location.trim_end_matches('/'));
    let data_files: BTreeSet<String> = referenced.data_files.iter().map(|p| s3(p)).collect();
    if let Some(outside) = data_files.iter().find(|p| !p.starts_with(&s3(&location))) {
        return Err(refused(format!(
            "data file {outside} lies outside the table location {location}: searching data files elsewhere is not built yet"
        )));
    }
    Ok(IcebergTable {
        plain: PlainTable {
            locations: vec![location],
            keys: Vec::new(),
            layout: Layout::Unpartitioned,
            notes: Vec::new(),
        },
        data_files,
        field_ids,
    })
}

/// Largest Parquet footer read from a position delete file.
const MAX_FOOTER_BYTES: u64 = 16 * 1024 * 1024;

/// Refuses a position delete file that carries the deleted rows themselves (the spec's
/// optional `row` column: their values, the subject's among them, would be a copy not
/// searched). Without it, a position delete file holds only data file paths and row
/// positions. Its footer is read (the last bytes of its current version).
async fn refuse_deleted_rows(stores: &Stores, location: &str) -> Result<(), String> {
    let unreadable = |why: String| format!("position delete file {location} cannot be read: {why}");
    let place = stores
        .place(&s3(location))
        .map_err(|e| unreadable(e.to_string()))?;
    let (store, bucket, key) = (&place.store, &place.bucket, &place.prefix);
    let size = store
        .head(bucket, key)
        .await
        .map_err(|e| unreadable(e.to_string()))?
        .size;
    let tail = match size.checked_sub(8) {
        Some(start) => store.get_range(bucket, key, None, start..size).await,
        None => return Err(unreadable("it is shorter than a Parquet footer".into())),
    }
    .map_err(|e| unreadable(e.to_string()))?;
    let length = footer_len(&tail).map_err(|e| unreadable(e.to_string()))?;
    let start = size
        .checked_sub(length)
        .filter(|_| length <= MAX_FOOTER_BYTES)
        .ok_or_else(|| unreadable("its footer length is impossible".into()))?;
    let footer = store
        .get_range(bucket, key, None, start..size - 8)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let metadata = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| unreadable(e.to_string()))?;
    if carries_rows(metadata.file_metadata().schema_descr()) {
        return Err(format!(
            "position delete file {location} carries the deleted rows (its `row` column): searching them is not built yet"
        ));
    }
    Ok(())
}

/// Whether a position delete file's schema has the optional `row` column.
fn carries_rows(schema: &parquet::schema::types::SchemaDescriptor) -> bool {
    schema
        .root_schema()
        .get_fields()
        .iter()
        .any(|f| f.name() == "row")
}

impl IcebergTable {
    /// Whether a listed object is one of the data files the snapshots reference.
    fn referenced(&self, place: &Place, meta: &ObjectMeta) -> bool {
        self.data_files.contains(&place.location_of(&meta.key))
    }
}

#[async_trait]
impl TableSource for IcebergTable {
    fn locations(&self) -> &[String] {
        &self.plain.locations
    }
    fn keys(&self) -> &[PartitionKey] {
        &self.plain.keys
    }
    fn notes(&self) -> &[(&'static str, String)] {
        &self.plain.notes
    }
    fn registered_partitions(&self) -> Option<usize> {
        None
    }
    fn expected_objects(&self) -> Option<usize> {
        Some(self.data_files.len())
    }
    fn field_ids(&self) -> Option<&FieldIds> {
        Some(&self.field_ids)
    }

    /// Lists a page of every version under the location; the referenced data files are
    /// the table's objects, every other current object is not the table's.
    async fn list_page(
        &self,
        stores: &Stores,
        at: ListAt<'_>,
        _checked: &mut Vec<String>,
    ) -> Result<SourcePage, SourceError> {
        let (place, listed) = super::list_versions(stores, at).await?;
        let (ours, others): (Vec<ObjectMeta>, Vec<ObjectMeta>) = listed
            .objects
            .into_iter()
            .partition(|meta| self.referenced(&place, meta));
        let mut page = self.plain.place(&place, ours);
        // The metadata names them: the table's objects wherever they lie, never hidden.
        for object in &mut page.objects {
            object.hidden = false;
            object.temporary = None;
        }
        page.not_the_tables.extend(
            others
                .into_iter()
                .filter(|m| m.noncurrent.is_none())
                .map(|m| m.key),
        );
        page.next = listed.next;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_delete_file_with_the_deleted_rows_is_told_by_its_schema() {
        use parquet::schema::{parser::parse_message_type, types::SchemaDescriptor};
        let schema = |text: &str| SchemaDescriptor::new(parse_message_type(text).unwrap().into());
        let plain = schema("message d { required binary file_path (STRING); required int64 pos; }");
        assert!(!carries_rows(&plain));
        let with_rows = schema(
            "message d { required binary file_path (STRING); required int64 pos;
             optional group row { optional binary email (STRING); } }",
        );
        assert!(carries_rows(&with_rows));
    }

    /// Position delete files as pyarrow-compatible writers make them, read from a local
    /// lake: with the `row` column the table is refused, without it accepted; a file that
    /// is not Parquet is an error, never "no rows".
    #[tokio::test]
    async fn position_delete_files_are_read_by_their_footer() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
        use arrow_schema::{DataType, Field};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::offline().with_local_root(Some(dir.path())).unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let write = |name: &str, with_rows: bool| {
            let paths: ArrayRef = Arc::new(StringArray::from(vec!["s3://b/t/data/a.parquet"]));
            let mut columns = vec![
                ("file_path", paths),
                ("pos", Arc::new(Int64Array::from(vec![3])) as ArrayRef),
            ];
            if with_rows {
                let email: ArrayRef = Arc::new(StringArray::from(vec!["ann@example.com"]));
                let row = StructArray::from(vec![(
                    Arc::new(Field::new("email", DataType::Utf8, true)),
                    email,
                )]);
                columns.push(("row", Arc::new(row)));
            }
            let batch = RecordBatch::try_from_iter(columns).unwrap();
            let file = std::fs::File::create(root.join(name)).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            format!("file://{}/{name}", root.display())
        };
        let plain = write("plain.parquet", false);
        assert_eq!(refuse_deleted_rows(&stores, &plain).await, Ok(()));
        let rows = write("rows.parquet", true);
        let refused = refuse_deleted_rows(&stores, &rows).await.unwrap_err();
        assert!(refused.contains("carries the deleted rows"), "{refused}");
        std::fs::write(root.join("junk.parquet"), b"not parquet at all").unwrap();
        let junk = format!("file://{}/junk.parquet", root.display());
        let error = refuse_deleted_rows(&stores, &junk).await.unwrap_err();
        assert!(error.contains("cannot be read"), "{error}");
    }

    #[test]
    fn hadoop_schemes_name_the_same_objects() {
        assert_eq!(s3("s3a://b/t/data/1.parquet"), "s3://b/t/data/1.parquet");
        assert_eq!(s3("s3n://b/k"), "s3://b/k");
        assert_eq!(s3("s3://b/k"), "s3://b/k");
    }
}
