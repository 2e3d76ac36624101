//! Data mappers: which table holds subject data and how rows are matched.
//!
//! Invariants of a parsed [`DataMapper`]: the id is a slug; there is at least one match
//! column and no duplicates; every column path has non-empty segments; `partition_keys`
//! have no duplicates; a `path` catalog's location is `s3://bucket[/prefix]` or
//! `file:///absolute/path`; a `role_arn` looks like an IAM role ARN.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::hive_type::{HiveType, field_at_path};
use super::validation::Errors;

/// A user-chosen identifier: lowercase letters, digits, `-` and `_`, 1 to 63 characters,
/// starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DataMapperId(String);

impl DataMapperId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_len = (1..=63).contains(&raw.len());
        let mut chars = raw.chars();
        let ok_first = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok_len && ok_first && ok_rest {
            Ok(Self(raw.to_owned()))
        } else {
            Err(
                "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                    .to_owned(),
            )
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DataMapperId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Object format of the table's data files: Apache Parquet, JSON Lines (`json`), CSV and
/// other delimited text (`csv`), Avro object container files (`avro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Json,
    Csv,
    Avro,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Avro => "avro",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "parquet" => Some(Format::Parquet),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "avro" => Some(Format::Avro),
            _ => None,
        }
    }
}

/// How a `path` mapper's CSV objects are read (a Glue table's SerDe says it for a Glue
/// mapper). Each character is one byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// The field separator (default `,`).
    #[serde(default = "comma")]
    pub delimiter: String,
    /// The quote character (default `"`; an empty string: fields are never quoted).
    #[serde(default = "double_quote")]
    pub quote: String,
    /// The escape character, if any (default none: a quote inside a quoted field is doubled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<String>,
    /// The first line names the columns, and is kept as it is (default false).
    #[serde(default)]
    pub header: bool,
    /// The columns in order, when there is no header line to name them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

fn comma() -> String {
    ",".to_owned()
}

fn double_quote() -> String {
    "\"".to_owned()
}

impl CsvOptions {
    /// The one byte a character option is, None for an empty one; Err names the option.
    pub fn byte(value: &str, option: &str) -> Result<Option<u8>, String> {
        match value.as_bytes() {
            [] => Ok(None),
            [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(Some(*b)),
            _ => Err(format!(
                "{option} must be one ASCII character other than a line break"
            )),
        }
    }

    /// Checks the options against the mapper's match columns.
    fn check(&self, columns: &[String], errors: &mut Errors) {
        let delimiter = Self::byte(&self.delimiter, "delimiter");
        match &delimiter {
            Ok(None) => errors.add("catalog.csv.delimiter", "must not be empty"),
            Err(message) => errors.add("catalog.csv.delimiter", message.clone()),
            Ok(Some(_)) => {}
        }
        let quote = Self::byte(&self.quote, "quote");
        if let Err(message) = &quote {
            errors.add("catalog.csv.quote", message.clone());
        }
        let escape = self.escape.as_deref().map(|e| Self::byte(e, "escape"));
        if let Some(Err(message)) = &escape {
            errors.add("catalog.csv.escape", message.clone());
        }
        let bytes = [delimiter.ok().flatten(), quote.ok().flatten()];
        if bytes[0].is_some() && bytes[0] == bytes[1] {
            errors.add("catalog.csv.quote", "must differ from the delimiter");
        }
        match &self.columns {
            None if !self.header => errors.add(
                "catalog.csv.columns",
                "name the columns in order, or read them from a header line (header: true)",
            ),
            Some(names) => {
                check_unique("catalog.csv.columns", names, errors);
                for (i, c) in columns.iter().enumerate() {
                    let top = c.split('.').next().unwrap_or_default();
                    if !names.iter().any(|n| n.eq_ignore_ascii_case(top)) {
                        errors.add(format!("columns[{i}]"), "is not one of catalog.csv.columns");
                    }
                }
            }
            None => {}
        }
    }
}

/// Which engine finds the objects that hold matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FindEngine {
    /// Lethe reads footers and match columns itself.
    #[default]
    Embedded,
    /// One Athena query per partition (not available in this build).
    Athena,
}

impl FindEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            FindEngine::Embedded => "embedded",
            FindEngine::Athena => "athena",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "embedded" => Some(FindEngine::Embedded),
            "athena" => Some(FindEngine::Athena),
            _ => None,
        }
    }
}

/// Where the table is described: `{"provider": "glue", ...}` or `{"provider": "path", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum CatalogRef {
    Glue(GlueTable),
    Path(PathTable),
}

/// A table of the AWS Glue Data Catalog (`"provider": "glue"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlueTable {
    pub database: String,
    pub table: String,
}

/// A table known only by its location (`"provider": "path"`): partitions are
/// `key=value/` prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathTable {
    /// `s3://bucket/prefix` or `file:///absolute/path`.
    pub location: String,
    /// Must agree with the mapper's `format` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The table's partition keys, outermost first.
    #[serde(default)]
    pub partition_keys: Vec<String>,
    /// How CSV objects are read (format `csv` only; required for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
}

/// A parsed `s3://` or `file://` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    S3 { bucket: String, prefix: String },
    File { path: String },
}

impl Location {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw
            .strip_prefix("s3://")
            .or_else(|| raw.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return Err("s3:// location needs a valid bucket name".to_owned());
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some(path) = raw.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err("file:// location needs an absolute path (file:///...)".to_owned());
            }
            return Ok(Location::File {
                path: path.to_owned(),
            });
        }
        Err("must start with s3:// or file://".to_owned())
    }
}

/// A match column: a top-level column or a dotted path into nested struct/object fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPath(Vec<String>);

impl ColumnPath {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let segments: Vec<String> = raw.split('.').map(str::to_owned).collect();
        if raw.is_empty() || segments.iter().any(|s| s.trim().is_empty()) {
            return Err("must be a column name or a dotted path like address.email".to_owned());
        }
        if raw.len() > 767 {
            return Err("must be at most 767 characters".to_owned());
        }
        Ok(Self(segments))
    }
    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for ColumnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A data mapper as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMapper {
    pub id: DataMapperId,
    pub catalog: CatalogRef,
    pub format: Format,
    pub columns: Vec<ColumnPath>,
    pub partition_keys: Vec<String>,
    pub role_arn: Option<String>,
    pub delete_old_versions: bool,
    pub ignore_object_not_found: bool,
    /// Rewrite objects in a bucket without versioning (the only copy is replaced).
    pub allow_unversioned: bool,
    /// Archived objects (Glacier, Deep Archive, archive tiers) are out of scope: listed in
    /// the report, and they do not keep items queued.
    pub skip_archived: bool,
    /// Apache Iceberg: the purge may expire snapshots a tag or another branch keeps.
    pub expire_tagged_snapshots: bool,
    /// The scheduler may start a real job over this mapper on its own when a queued
    /// item's deadline comes near (default false: it raises an alert instead).
    pub automatic_jobs: bool,
    pub find_engine: FindEngine,
    /// The catalog types of the match columns (dotted path → Glue type text), read from
    /// the table when the mapper is written; empty for `path` mappers (untyped).
    pub column_types: std::collections::BTreeMap<String, String>,
}

/// Match columns and partition keys a mapper may name, each.
pub const MAX_COLUMNS: usize = 256;

/// The unvalidated parts of a mapper, as a caller sends them.
#[derive(Debug, Clone)]
pub struct DataMapperDraft {
    pub catalog: CatalogRef,
    pub format: Format,
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    pub role_arn: Option<String>,
    pub delete_old_versions: bool,
    pub ignore_object_not_found: bool,
    /// Rewrite objects in a bucket without versioning (the only copy is replaced).
    pub allow_unversioned: bool,
    /// Archived objects (Glacier, Deep Archive, archive tiers) are out of scope: listed in
    /// the report, and they do not keep items queued.
    pub skip_archived: bool,
    /// Apache Iceberg: the purge may expire snapshots a tag or another branch keeps.
    pub expire_tagged_snapshots: bool,
    pub automatic_jobs: bool,
    pub find_engine: FindEngine,
}

impl DataMapperDraft {
    /// Checks everything that needs no catalog access.
    pub fn parse(self, id: DataMapperId) -> Result<DataMapper, Vec<super::validation::FieldError>> {
        let mut errors = Errors::new();
        for (field, n) in [
            ("columns", self.columns.len()),
            ("partition_keys", self.partition_keys.len()),
        ] {
            if n > MAX_COLUMNS {
                errors.add(field, format!("at most {MAX_COLUMNS} entries"));
                return Err(errors.into_vec());
            }
        }
        let columns = parse_columns(&self.columns, &mut errors);
        check_unique("partition_keys", &self.partition_keys, &mut errors);
        for (i, key) in self.partition_keys.iter().enumerate() {
            if key.trim().is_empty() || key.contains('.') {
                errors.add(
                    format!("partition_keys[{i}]"),
                    "must be a partition key name",
                );
            }
        }
        self.check_catalog(&mut errors);
        if let Some(arn) = &self.role_arn
            && !is_role_arn(arn)
        {
            errors.add(
                "role_arn",
                "must be an IAM role ARN like arn:aws:iam::123456789012:role/Name",
            );
        }
        if self.find_engine == FindEngine::Athena {
            errors.add(
                "find_engine",
                "the athena find engine is not available in this build; use embedded",
            );
        }
        errors.finish(DataMapper {
            id,
            catalog: self.catalog,
            format: self.format,
            columns,
            partition_keys: self.partition_keys,
            role_arn: self.role_arn,
            delete_old_versions: self.delete_old_versions,
            ignore_object_not_found: self.ignore_object_not_found,
            allow_unversioned: self.allow_unversioned,
            skip_archived: self.skip_archived,
            expire_tagged_snapshots: self.expire_tagged_snapshots,
            automatic_jobs: self.automatic_jobs,
            find_engine: self.find_engine,
            column_types: Default::default(),
        })
    }

    /// Checks the catalog reference: a Glue table's names, a `path` table's location,
    /// format, CSV options and partition keys.
    fn check_catalog(&self, errors: &mut Errors) {
        match &self.catalog {
            CatalogRef::Glue(GlueTable { database, table }) => {
                if database.trim().is_empty() {
                    errors.add("catalog.database", "must not be empty");
                }
                if table.trim().is_empty() {
                    errors.add("catalog.table", "must not be empty");
                }
            }
            CatalogRef::Path(PathTable {
                location,
                format,
                partition_keys,
                csv,
            }) => {
                if let Err(message) = Location::parse(location) {
                    errors.add("catalog.location", message);
                }
                match (csv, self.format) {
                (Some(options), Format::Csv) => options.check(&self.columns, errors),
                (None, Format::Csv) => errors.add(
                    "catalog.csv",
                    "a csv mapper's catalog says how its objects are read: {\"delimiter\": \",\", \"header\": true}",
                ),
                (Some(_), _) => errors.add("catalog.csv", "only for format csv"),
                (None, _) => {}
            }
                if format.is_some_and(|f| f != self.format) {
                    errors.add("catalog.format", "must agree with the mapper's format");
                }
                check_unique("catalog.partition_keys", partition_keys, errors);
                for (i, key) in self.partition_keys.iter().enumerate() {
                    if !partition_keys.contains(key) {
                        errors.add(
                            format!("partition_keys[{i}]"),
                            "is not one of the catalog's partition_keys",
                        );
                    }
                }
            }
        }
    }
}

fn parse_columns(raw: &[String], errors: &mut Errors) -> Vec<ColumnPath> {
    if raw.is_empty() {
        errors.add("columns", "must name at least one column");
    }
    check_unique("columns", raw, errors);
    raw.iter()
        .enumerate()
        .filter_map(|(i, c)| match ColumnPath::parse(c) {
            Ok(path) => Some(path),
            Err(message) => {
                errors.add(format!("columns[{i}]"), message);
                None
            }
        })
        .collect()
}

fn check_unique(field: &str, values: &[String], errors: &mut Errors) {
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        if !seen.insert(value) {
            errors.add(
                format!("{field}[{i}]"),
                format!("duplicate entry {value:?}"),
            );
        }
    }
}

/// Whether `pattern` is an allowed-roles entry: an IAM role ARN whose role name (only)
/// may hold `*` wildcards (`arn:aws:iam::123456789012:role/lethe-*`).
pub fn is_role_pattern(pattern: &str) -> bool {
    let Some((head, name)) = pattern.split_once(":role/") else {
        return false;
    };
    !head.contains('*') && is_role_arn(&format!("{head}:role/{}", name.replace('*', "x")))
}

/// Whether `arn` is one of the allowed roles (`patterns`: see [`is_role_pattern`]).
pub fn role_allowed(patterns: &[String], arn: &str) -> bool {
    patterns.iter().any(|p| {
        let (Some((head, name)), Some((arn_head, arn_name))) =
            (p.split_once(":role/"), arn.split_once(":role/"))
        else {
            return false;
        };
        head == arn_head && glob(name, arn_name)
    })
}

/// `*`-only glob matching (any run of characters, `/` included: role paths).
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

/// A table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableDef {
    pub location: Option<String>,
    pub columns: Vec<(String, HiveType)>,
    pub partition_keys: Vec<String>,
    /// The partition keys' declared types, in `partition_keys` order (None: unparseable).
    pub partition_types: Vec<Option<HiveType>>,
    /// The format inferred from the SerDe / input format; None when unrecognised.
    pub format: Option<Format>,
    /// The input format class, as the catalog gives it.
    pub input_format: Option<String>,
    /// The table's parameters (partition projection, table type, …).
    pub parameters: std::collections::BTreeMap<String, String>,
    /// The SerDe class (`SerdeInfo.SerializationLibrary`), as the catalog gives it.
    pub serde_library: Option<String>,
    /// The SerDe's parameters (`SerdeInfo.Parameters`: a JSON SerDe's `mapping.*`, …).
    pub serde_parameters: std::collections::BTreeMap<String, String>,
}

impl TableDef {
    /// The partition keys with their types.
    pub fn keys(&self) -> Vec<crate::domain::partition::PartitionKey> {
        self.partition_keys
            .iter()
            .enumerate()
            .map(|(i, name)| crate::domain::partition::PartitionKey {
                name: name.clone(),
                ty: self.partition_types.get(i).cloned().flatten(),
            })
            .collect()
    }

    /// Whether Athena projects this table's partitions (`projection.enabled`): it then
    /// ignores the registered ones.
    pub fn projection_enabled(&self) -> bool {
        self.parameters
            .get("projection.enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The projection's `storage.location.template`, when set.
    pub fn location_template(&self) -> Option<&str> {
        self.parameters
            .get("storage.location.template")
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
    }
}

/// A table format that keeps its own metadata over the data files. Rewriting a data file
/// in place breaks such a table (its manifests / log / timeline record each file's size
/// and statistics) and its old snapshots keep the erased rows: Lethe refuses them until
/// it erases through the format itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Iceberg,
    Delta,
    Hudi,
}

impl TableFormat {
    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Iceberg => "Apache Iceberg",
            TableFormat::Delta => "Delta Lake",
            TableFormat::Hudi => "Apache Hudi",
        }
    }

    /// Why a table of this format is refused.
    pub fn refusal(self) -> String {
        let metadata = match self {
            TableFormat::Iceberg => "its manifests",
            TableFormat::Delta => "its transaction log (_delta_log)",
            TableFormat::Hudi => "its timeline, metadata table and bloom index",
        };
        format!(
            "this is an {} table: rewriting its data files in place would break it ({metadata} record each file's size and statistics) and its older snapshots would still hold the erased rows; Lethe does not erase through table formats yet",
            self.name()
        )
    }

    /// The metadata folders (relative to a table location) that mark a table format.
    pub const FOLDERS: [(&'static str, TableFormat); 3] = [
        ("_delta_log/", TableFormat::Delta),
        (".hoodie/", TableFormat::Hudi),
        ("metadata/", TableFormat::Iceberg),
    ];

    /// The format whose metadata an object is, from its key: a `_delta_log/` or `.hoodie/`
    /// folder, or a `metadata/` folder holding `….metadata.json` (or Iceberg's version
    /// hint), at any depth.
    pub fn of_key(key: &str) -> Option<TableFormat> {
        Self::locate(key).map(|(format, _)| format)
    }

    /// [`TableFormat::of_key`] and the key's prefix up to that folder (the format table's
    /// root: every object under it belongs to that table).
    pub fn locate(key: &str) -> Option<(TableFormat, &str)> {
        let mut start = 0;
        while let Some(len) = key[start..].find('/') {
            let (folder, rest) = (&key[start..start + len], &key[start + len + 1..]);
            let format = match folder {
                "_delta_log" => Some(TableFormat::Delta),
                ".hoodie" => Some(TableFormat::Hudi),
                "metadata"
                    if rest.ends_with(".metadata.json")
                        || rest.ends_with(".metadata.json.gz")
                        || rest == "version-hint.text" =>
                {
                    Some(TableFormat::Iceberg)
                }
                _ => None,
            };
            if let Some(format) = format {
                return Some((format, &key[..start]));
            }
            start += len + 1;
        }
        None
    }
}

impl TableDef {
    /// The table format the catalog entry describes: `table_type=ICEBERG` or a
    /// `metadata_location`; `spark.sql.sources.provider=delta` (or `table_type=DELTA`);
    /// a Hudi input format or `hoodie.*` parameters.
    /// An Iceberg table's current `metadata.json`, as its Glue entry names it.
    pub fn metadata_location(&self) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("metadata_location"))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn table_format(&self) -> Option<TableFormat> {
        let param = |k: &str| {
            self.parameters
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        };
        let provider = param("spark.sql.sources.provider").unwrap_or_default();
        let table_type = param("table_type").unwrap_or_default();
        let input = self
            .input_format
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if table_type == "iceberg" || provider == "iceberg" || param("metadata_location").is_some()
        {
            Some(TableFormat::Iceberg)
        } else if table_type == "delta" || provider == "delta" {
            Some(TableFormat::Delta)
        } else if provider == "hudi"
            || input.contains("hoodie")
            || input.contains("org.apache.hudi")
            || self
                .parameters
                .keys()
                .any(|k| k.to_ascii_lowercase().starts_with("hoodie."))
        {
            Some(TableFormat::Hudi)
        } else {
            None
        }
    }
}

/// The catalog type of each of the mapper's match columns (dotted path → type text).
pub fn column_types(
    mapper: &DataMapper,
    table: &TableDef,
) -> std::collections::BTreeMap<String, String> {
    mapper
        .columns
        .iter()
        .filter_map(|c| {
            let ty = field_at_path(&table.columns, c.segments()).ok()?;
            Some((c.to_string(), ty.to_string()))
        })
        .collect()
}

/// Checks a Glue-backed mapper against its table: each failure names the field.
pub fn check_against_table(
    mapper: &DataMapper,
    table: &TableDef,
) -> Result<(), Vec<super::validation::FieldError>> {
    let iceberg = table.table_format() == Some(TableFormat::Iceberg);
    if let Some(format) = table.table_format().filter(|_| !iceberg) {
        return Err(vec![super::validation::FieldError {
            field: "catalog.table".to_owned(),
            message: format.refusal(),
            about_mappers: false,
        }]);
    }
    let mut errors = Errors::new();
    for (i, column) in mapper.columns.iter().enumerate() {
        if let Err(message) = field_at_path(&table.columns, column.segments()) {
            errors.add(format!("columns[{i}]"), message);
        }
    }
    for (i, key) in mapper.partition_keys.iter().enumerate() {
        if !table
            .partition_keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key))
        {
            errors.add(
                format!("partition_keys[{i}]"),
                format!(
                    "{key:?} is not a partition key of the table (partition keys: {})",
                    list_or_none(&table.partition_keys)
                ),
            );
        }
    }
    check_format(mapper, table, iceberg, &mut errors);
    // Glue places data on S3: a table naming a local path (`file://`) is refused here as
    // find refuses it (anyone who can write the catalog could otherwise point Lethe at
    // the host's files). Registered partitions are checked by find.
    match table.location.as_deref() {
        Some(l) if matches!(Location::parse(l), Ok(Location::S3 { .. })) => {}
        Some(l) if !l.starts_with("s3://") => errors.add(
            "catalog.table",
            format!("the table's location {l:?} is not s3://: a Glue table is read on S3 only"),
        ),
        _ => errors.add("catalog.table", "the table has no s3:// location"),
    }
    if let Some(template) = table.location_template()
        && !template.starts_with("s3://")
    {
        errors.add(
            "catalog.table",
            format!(
                "the table's storage.location.template {template:?} is not s3://: a Glue table is read on S3 only"
            ),
        );
    }
    errors.finish(())
}

/// Whether the mapper's format is the table's (an Iceberg table's data files: Parquet).
fn check_format(mapper: &DataMapper, table: &TableDef, iceberg: bool, errors: &mut Errors) {
    match table.format {
        // An Iceberg table's data files are Parquet (find checks each file's format in the
        // table's manifests); its Glue entry often names no input format.
        _ if iceberg => {
            if mapper.format != Format::Parquet {
                errors.add(
                    "format",
                    "an Iceberg table's data files are searched as Parquet: the format must be parquet",
                );
            }
        }
        Some(format) if format != mapper.format => errors.add(
            "format",
            format!(
                "the table stores {} data, not {}",
                format.as_str(),
                mapper.format.as_str()
            ),
        ),
        None => errors.add(
            "format",
            unreadable_reason(
                table.input_format.as_deref(),
                table.serde_library.as_deref(),
            ),
        ),
        Some(_) => {}
    }
}

fn list_or_none(values: &[String]) -> String {
    if values.is_empty() {
        "none".to_owned()
    } else {
        values.join(", ")
    }
}

/// The SerDes a Glue CSV table is read through.
pub const CSV_SERDES: [&str; 2] = [
    "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
    "org.apache.hadoop.hive.serde2.OpenCSVSerde",
];

/// Infers the format from a Glue/Hive input format and SerDe class name: Parquet, JSON
/// (a JSON SerDe), Avro (the Avro SerDe or input format), CSV (a text input format read
/// by LazySimpleSerDe or OpenCSVSerde); None for anything else (ORC among them).
pub fn infer_format(input_format: Option<&str>, serde_lib: Option<&str>) -> Option<Format> {
    let text = format!(
        "{} {}",
        input_format.unwrap_or_default(),
        serde_lib.unwrap_or_default()
    )
    .to_ascii_lowercase();
    let text_input = input_format.is_none_or(|i| i.ends_with(".TextInputFormat"));
    if text.contains("parquet") {
        Some(Format::Parquet)
    } else if text.contains("json") {
        Some(Format::Json)
    } else if text.contains("avro") {
        Some(Format::Avro)
    } else if text_input && serde_lib.is_some_and(|s| CSV_SERDES.contains(&s.trim())) {
        Some(Format::Csv)
    } else {
        None
    }
}

/// Why a table whose format is not inferred cannot be erased in.
pub fn unreadable_reason(input_format: Option<&str>, serde_lib: Option<&str>) -> String {
    let text = format!(
        "{} {}",
        input_format.unwrap_or_default(),
        serde_lib.unwrap_or_default()
    )
    .to_ascii_lowercase();
    if text.contains("orc") {
        return "the table stores ORC data, which Lethe refuses: no ORC writer for Rust today rewrites a file keeping every other row exactly as it was (types, encodings, statistics), so an erasure could not be checked equal to the source minus the erased rows".to_owned();
    }
    "the table's SerDe / input format is not one Lethe reads exactly (Parquet, JSON, CSV through LazySimpleSerDe or OpenCSVSerde, Avro)".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hive_type::HiveType;

    fn draft() -> DataMapperDraft {
        DataMapperDraft {
            catalog: CatalogRef::Glue(GlueTable {
                database: "db".into(),
                table: "people".into(),
            }),
            format: Format::Parquet,
            columns: vec!["customer_id".into(), "contact.email".into()],
            partition_keys: vec!["year".into()],
            role_arn: None,
            delete_old_versions: true,
            ignore_object_not_found: false,
            allow_unversioned: false,
            skip_archived: false,
            expire_tagged_snapshots: false,
            automatic_jobs: false,
            find_engine: FindEngine::Embedded,
        }
    }

    fn id() -> DataMapperId {
        DataMapperId::parse("people").unwrap()
    }

    #[test]
    fn data_mapper_ids_are_slugs() {
        for good in ["a", "people-2024", "x_y", "0abc"] {
            assert!(DataMapperId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "Upper", "a b", "a/b", &"a".repeat(64)] {
            assert!(DataMapperId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_parse_s3_and_absolute_file_urls_only() {
        assert_eq!(
            Location::parse("s3://my-bucket/data/people/").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "data/people/".into()
            }
        );
        assert!(Location::parse("file:///tmp/lake").is_ok());
        assert!(Location::parse("file://relative").is_err());
        assert!(Location::parse("https://x/y").is_err());
        assert!(Location::parse("s3://UPPER/x").is_err());
    }

    #[test]
    fn draft_reports_every_invalid_field_at_once() {
        let mut d = draft();
        d.columns = vec!["a".into(), "a".into(), "b..c".into()];
        d.role_arn = Some("arn:aws:iam::12:user/x".into());
        d.find_engine = FindEngine::Athena;
        let errors = d.parse(id()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["columns[1]", "columns[2]", "role_arn", "find_engine"]
        );
    }

    #[test]
    fn path_catalog_partition_keys_bound_the_mapper_partition_keys() {
        let mut d = draft();
        d.catalog = CatalogRef::Path(PathTable {
            location: "file:///tmp/lake".into(),
            format: Some(Format::Json),
            partition_keys: vec!["month".into()],
            csv: None,
        });
        let errors = d.parse(id()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["catalog.format", "partition_keys[0]"]);
    }

    #[test]
    fn allowed_roles_match_by_account_exactly_and_by_name_with_wildcards() {
        let allowed = vec![
            "arn:aws:iam::123456789012:role/lethe-*".to_owned(),
            "arn:aws:iam::210987654321:role/LakeRole".to_owned(),
        ];
        for (arn, ok) in [
            ("arn:aws:iam::123456789012:role/lethe-jobs", true),
            ("arn:aws:iam::123456789012:role/lethe-", true),
            ("arn:aws:iam::123456789012:role/other", false),
            ("arn:aws:iam::999999999999:role/lethe-jobs", false),
            ("arn:aws:iam::210987654321:role/LakeRole", true),
            ("arn:aws:iam::210987654321:role/LakeRole2", false),
        ] {
            assert_eq!(role_allowed(&allowed, arn), ok, "{arn}");
        }
        assert!(!role_allowed(&[], "arn:aws:iam::123456789012:role/x"));
        assert!(is_role_pattern("arn:aws:iam::123456789012:role/a*b*"));
        assert!(
            !is_role_pattern("arn:aws:iam::*:role/x"),
            "no wildcard account"
        );
        assert!(!is_role_pattern("arn:aws:iam::123456789012:user/x"));
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXbY") && glob("*", ""));
    }

    #[test]
    fn role_arns_must_name_an_iam_role() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/Lethe"));
        assert!(is_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/Lethe"
        ));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/Lethe"));
        assert!(!is_role_arn("arn:aws:iam::1234:role/Lethe"));
        assert!(!is_role_arn("role/Lethe"));
    }

    fn table() -> TableDef {
        TableDef {
            location: Some("s3://bucket/people/".into()),
            columns: vec![
                ("customer_id".into(), HiveType::parse("bigint").unwrap()),
                (
                    "contact".into(),
                    HiveType::parse("struct<email:string,phone:string>").unwrap(),
                ),
            ],
            partition_keys: vec!["year".into()],
            format: Some(Format::Parquet),
            ..Default::default()
        }
    }

    #[test]
    fn a_mapper_matching_its_table_passes() {
        let mapper = draft().parse(id()).unwrap();
        assert_eq!(check_against_table(&mapper, &table()), Ok(()));
    }

    #[test]
    fn table_checks_name_missing_columns_partition_keys_and_format() {
        let mut d = draft();
        d.columns = vec!["customer_id".into(), "contact.fax".into(), "nope".into()];
        d.partition_keys = vec!["month".into()];
        d.format = Format::Json;
        let mapper = d.parse(id()).unwrap();
        let errors = check_against_table(&mapper, &table()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["columns[1]", "columns[2]", "partition_keys[0]", "format"]
        );
    }

    #[test]
    fn a_table_or_projection_template_off_s3_is_refused_naming_the_table() {
        let mapper = draft().parse(id()).unwrap();
        let messages = |t: &TableDef| -> Vec<String> {
            match check_against_table(&mapper, t) {
                Ok(()) => vec![],
                Err(errors) => errors
                    .into_iter()
                    .inspect(|e| assert_eq!(e.field, "catalog.table"))
                    .map(|e| e.message)
                    .collect(),
            }
        };
        for location in [
            "file:///etc/",
            "file:///tmp/lake/",
            "hdfs://nn/people/",
            "s3a://b/p/",
        ] {
            let t = TableDef {
                location: Some(location.into()),
                ..table()
            };
            let m = messages(&t);
            assert_eq!(m.len(), 1, "{location}: {m:?}");
            assert!(
                m[0].contains(location) && m[0].contains("not s3://"),
                "{m:?}"
            );
        }
        let mut projected = table();
        projected.parameters.insert(
            "storage.location.template".into(),
            "file:///etc/${year}/".into(),
        );
        assert_eq!(messages(&projected).len(), 1);
        projected.parameters.insert(
            "storage.location.template".into(),
            "s3://bucket/people/${year}/".into(),
        );
        assert_eq!(messages(&projected), Vec::<String>::new());
        let nowhere = TableDef {
            location: None,
            ..table()
        };
        assert_eq!(messages(&nowhere), ["the table has no s3:// location"]);
    }

    #[test]
    fn formats_are_inferred_from_serde_and_input_format() {
        assert_eq!(
            infer_format(
                Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
                None
            ),
            Some(Format::Parquet)
        );
        assert_eq!(
            infer_format(
                Some("org.apache.hadoop.mapred.TextInputFormat"),
                Some("org.openx.data.jsonserde.JsonSerDe")
            ),
            Some(Format::Json)
        );
        assert_eq!(
            infer_format(
                Some("org.apache.hadoop.mapred.TextInputFormat"),
                Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe")
            ),
            Some(Format::Csv)
        );
        assert_eq!(
            infer_format(
                Some("org.apache.hadoop.mapred.TextInputFormat"),
                Some("org.apache.hadoop.hive.serde2.OpenCSVSerde")
            ),
            Some(Format::Csv)
        );
        assert_eq!(
            infer_format(
                Some("org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat"),
                Some("org.apache.hadoop.hive.serde2.avro.AvroSerDe")
            ),
            Some(Format::Avro)
        );
        let orc = (
            Some("org.apache.hadoop.hive.ql.io.orc.OrcInputFormat"),
            Some("org.apache.hadoop.hive.ql.io.orc.OrcSerde"),
        );
        assert_eq!(infer_format(orc.0, orc.1), None);
        assert!(unreadable_reason(orc.0, orc.1).contains("no ORC writer for Rust"));
        // LazySimpleSerDe over another input format (a sequence file) is not text.
        assert_eq!(
            infer_format(
                Some("org.apache.hadoop.mapred.SequenceFileInputFormat"),
                Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe")
            ),
            None
        );
    }

    #[test]
    fn a_csv_path_mapper_says_how_its_objects_are_read() {
        let draft = |csv: Option<CsvOptions>, format| DataMapperDraft {
            catalog: CatalogRef::Path(PathTable {
                location: "s3://bucket/raw".into(),
                format: None,
                partition_keys: vec![],
                csv,
            }),
            format,
            partition_keys: vec![],
            ..draft()
        };
        let fields = |d: DataMapperDraft| -> Vec<String> {
            d.parse(DataMapperId::parse("m").unwrap())
                .map_or_else(|e| e.into_iter().map(|e| e.field).collect(), |_| vec![])
        };
        let options: CsvOptions =
            serde_json::from_value(serde_json::json!({"header": true})).unwrap();
        assert_eq!(
            (options.delimiter.as_str(), options.quote.as_str()),
            (",", "\"")
        );
        assert!(fields(draft(Some(options.clone()), Format::Csv)).is_empty());
        assert_eq!(fields(draft(None, Format::Csv)), ["catalog.csv"]);
        assert_eq!(fields(draft(Some(options), Format::Json)), ["catalog.csv"]);
        let bad: CsvOptions = serde_json::from_value(serde_json::json!({
            "delimiter": "||", "quote": "\n", "columns": ["customer_id", "customer_id"]
        }))
        .unwrap();
        assert_eq!(
            fields(draft(Some(bad), Format::Csv)),
            [
                "catalog.csv.delimiter",
                "catalog.csv.quote",
                "catalog.csv.columns[1]",
                "columns[1]"
            ]
        );
    }

    #[test]
    fn table_formats_are_told_by_their_catalog_entry_or_their_metadata_folders() {
        let with = |params: &[(&str, &str)], input: Option<&str>| TableDef {
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            input_format: input.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            with(&[("table_type", "ICEBERG")], None).table_format(),
            Some(TableFormat::Iceberg)
        );
        assert_eq!(
            with(
                &[("metadata_location", "s3://b/t/metadata/1.metadata.json")],
                None
            )
            .table_format(),
            Some(TableFormat::Iceberg)
        );
        assert_eq!(
            with(&[("spark.sql.sources.provider", "DELTA")], None).table_format(),
            Some(TableFormat::Delta)
        );
        assert_eq!(
            with(&[], Some("org.apache.hudi.hadoop.HoodieParquetInputFormat")).table_format(),
            Some(TableFormat::Hudi)
        );
        assert_eq!(
            with(&[("hoodie.table.name", "t")], None).table_format(),
            Some(TableFormat::Hudi)
        );
        let hive = with(
            &[("classification", "parquet"), ("EXTERNAL", "TRUE")],
            Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
        );
        assert_eq!(hive.table_format(), None);
        assert!(TableFormat::Delta.refusal().contains("Delta Lake"));

        assert_eq!(
            TableFormat::of_key("_delta_log/00000.json"),
            Some(TableFormat::Delta)
        );
        assert_eq!(
            TableFormat::of_key(".hoodie/hoodie.properties"),
            Some(TableFormat::Hudi)
        );
        assert_eq!(
            TableFormat::of_key("metadata/00001-ab.metadata.json"),
            Some(TableFormat::Iceberg)
        );
        // A folder that merely has such a name, or a file, is data.
        assert_eq!(TableFormat::of_key("metadata/part-0.parquet"), None);
        assert_eq!(TableFormat::of_key("dt=1/metadata/part-0.parquet"), None);
        assert_eq!(TableFormat::of_key("part-0.parquet"), None);
        assert_eq!(TableFormat::of_key("x/_delta_log"), None);
        assert_eq!(TableFormat::of_key("_delta_log.json"), None);
    }

    #[test]
    fn table_format_folders_are_found_at_any_depth_with_the_tables_root() {
        assert_eq!(
            TableFormat::locate("lake/pm/sales/_delta_log/00000.json"),
            Some((TableFormat::Delta, "lake/pm/sales/"))
        );
        assert_eq!(
            TableFormat::locate("a/b/ice/metadata/00001-ab.metadata.json"),
            Some((TableFormat::Iceberg, "a/b/ice/"))
        );
        assert_eq!(
            TableFormat::locate("a/hud/.hoodie/hoodie.properties"),
            Some((TableFormat::Hudi, "a/hud/"))
        );
        assert_eq!(
            TableFormat::locate("_delta_log/0.json"),
            Some((TableFormat::Delta, ""))
        );
        // The first such folder from the top names the root.
        assert_eq!(
            TableFormat::locate("t/_delta_log/x/.hoodie/y"),
            Some((TableFormat::Delta, "t/"))
        );
    }

    #[test]
    fn a_mapper_names_at_most_256_columns() {
        let mut d = draft();
        d.columns = (0..300).map(|i| format!("c{i}")).collect();
        let errors = d.parse(id()).unwrap_err();
        assert_eq!(errors[0].field, "columns");
        let mut d = draft();
        d.columns = vec!["a".into(), "b".into(), "a".into()];
        let errors = d.parse(id()).unwrap_err();
        assert_eq!(errors[0].field, "columns[2]");
    }
}
