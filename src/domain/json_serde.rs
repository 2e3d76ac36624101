//! A Glue JSON table's SerDe rules: which keys of a JSON line its SerDe reads a column
//! from (the reading of lines is `lakefile::jsonl::serde`'s).
//!
//! - OpenX (`org.openx.data.jsonserde.JsonSerDe`): `mapping.<field>` = the JSON key the
//!   field is read from (at any depth: struct fields are mapped by their name too, as
//!   the SerDe does); `case.insensitive` (default true: keys compare ignoring case);
//!   `dots.in.keys` (default false; when true a key's dots read as underscores, so
//!   `"a.b"` is the field `a_b`).
//! - Hive (`org.apache.hive.hcatalog.data.JsonSerDe`, `org.apache.hadoop.hive.serde2.JsonSerDe`):
//!   keys compare ignoring case; it has no mapping nor dots parameter (any `mapping.*`
//!   is ignored, as the SerDe ignores it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The OpenX JSON SerDe's class.
pub const OPENX: &str = "org.openx.data.jsonserde.JsonSerDe";
/// The Hive JSON SerDe's classes (HCatalog's, and Hive 3's).
pub const HIVE: [&str; 2] = [
    "org.apache.hive.hcatalog.data.JsonSerDe",
    "org.apache.hadoop.hive.serde2.JsonSerDe",
];

/// How a table's JSON SerDe finds a field's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonSerde {
    /// Keys compare with field names ignoring case.
    pub case_insensitive: bool,
    /// A key's dots read as underscores (`a.b` is the field `a_b`).
    #[serde(default)]
    pub dots_in_keys: bool,
    /// Field name (lowercase, as Hive names it) → the JSON key it is read from.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
}

/// Why a JSON Lines mapper cannot read a Glue table whose SerDe is `library` with these
/// parameters (None: it can). A SerDe whose key rules are not known here would be read by
/// exact names, and might never see the column it maps (every row a silent miss); an
/// OpenX mapping naming alternatives (`a|b`) is not read the same way by every version of
/// the SerDe. Both are refused, never guessed. A table with no SerDe named is read by
/// exact names, as a `path` mapper's lines are.
pub fn refusal(library: Option<&str>, parameters: &BTreeMap<String, String>) -> Option<String> {
    let library = library?.trim();
    if library == OPENX {
        let alternatives = parameters
            .iter()
            .find(|(k, v)| k.starts_with("mapping.") && v.contains('|'));
        return alternatives.map(|(k, _)| {
            format!("the OpenX SerDe parameter {k} names alternative keys (`|`), which Lethe does not read; refused")
        });
    }
    (!HIVE.contains(&library)).then(|| {
        format!(
            "the table's SerDe {library} is not a JSON SerDe Lethe reads lines as (OpenX, Hive JSON); refused"
        )
    })
}

impl JsonSerde {
    /// The rules of a SerDe class with its parameters; None for a SerDe whose rules are
    /// not known here (its lines are matched as a `path` mapper's).
    pub fn of_table(library: Option<&str>, parameters: &BTreeMap<String, String>) -> Option<Self> {
        let library = library?.trim();
        if HIVE.contains(&library) {
            return Some(Self {
                case_insensitive: true,
                ..Self::default()
            });
        }
        if library != OPENX {
            return None;
        }
        // As the SerDe reads them: `true` ignoring case is true, anything else false.
        let flag = |key: &str, default: &str| {
            parameters
                .get(key)
                .map_or(default, String::as_str)
                .eq_ignore_ascii_case("true")
        };
        Some(Self {
            case_insensitive: flag("case.insensitive", "true"),
            dots_in_keys: flag("dots.in.keys", "false"),
            mapping: parameters
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("mapping.")?.to_owned(), v.clone())))
                .collect(),
        })
    }

    /// Whether the SerDe may read the field `field` (lowercase) from `key`.
    pub fn reads(&self, field: &str, key: &str) -> bool {
        let target = self.mapping.get(field).map_or(field, String::as_str);
        if self.same(key, target) {
            return true;
        }
        // A dotted key read as underscores; against the field's name and its mapped key
        // (readers differ on which).
        if self.dots_in_keys && key.contains('.') {
            let underscored = key.replace('.', "_");
            return self.same(&underscored, field) || self.same(&underscored, target);
        }
        false
    }

    fn same(&self, key: &str, name: &str) -> bool {
        match self.case_insensitive {
            false => key == name,
            true if key.is_ascii() && name.is_ascii() => key.eq_ignore_ascii_case(name),
            true => key.to_lowercase() == name.to_lowercase(),
        }
    }
}
