//! Find in one JSON Lines object (plain or gzip, decided by the caller): streamed line by
//! line, nested object fields reached by dotted path. A numeric id matches a JSON number,
//! a string id a JSON string, as Athena compares them.

use std::io::BufRead;

use serde_json::Value;

use super::match_set::{Key, MatchSet};

/// Why an object could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum JsonFindError {
    #[error("cannot read the object: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} is not a JSON object")]
    Malformed { line: u64 },
}

/// What find learnt about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonFindReport {
    pub lines_total: u64,
    pub lines_matched: u64,
    pub bytes_scanned: u64,
}

/// The value at a dotted path (case-insensitive keys), if any.
pub fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(object, |node, segment| {
        let map = node.as_object()?;
        map.get(segment).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(segment))
                .map(|(_, v)| v)
        })
    })
}

/// Whether one parsed line matches: any column equals a simple id, or the line's values
/// at a composite group's columns form one of its tuples.
pub fn line_matches(object: &Value, columns: &[String], ids: &MatchSet) -> bool {
    if columns
        .iter()
        .any(|c| value_at(object, c).is_some_and(|v| ids.contains_json(v)))
    {
        return true;
    }
    ids.composites().iter().any(|group| {
        let key: Option<Vec<Key>> = group
            .columns
            .iter()
            .map(|c| value_at(object, c).and_then(Key::from_json))
            .collect();
        key.is_some_and(|k| group.tuples.contains(&k))
    })
}

/// Streams the object and counts matching lines. Blank lines are skipped; any other line
/// that is not a JSON object makes the object corrupt.
pub fn find<R: BufRead>(
    mut reader: R,
    columns: &[String],
    ids: &MatchSet,
) -> Result<JsonFindReport, JsonFindError> {
    let mut report = JsonFindReport::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(report);
        }
        report.bytes_scanned += n as u64;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.lines_total += 1;
        let object: Value = serde_json::from_slice(&line)
            .ok()
            .filter(Value::is_object)
            .ok_or(JsonFindError::Malformed {
                line: report.lines_total,
            })?;
        if line_matches(&object, columns, ids) {
            report.lines_matched += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    const LINES: &str = r#"{"user": {"id": 42, "email": "a@x"}, "name": "Jane", "last": "Doe"}
{"user": {"id": "42", "email": "b@x"}, "name": "Joe", "last": "Doe"}

{"user": {"id": 7.5}, "name": "Jane", "last": "Roe"}
"#;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn numbers_match_numbers_and_strings_match_strings_through_nested_paths() {
        let ids = MatchSet::from_values(&[json!(42)]);
        let r = find(LINES.as_bytes(), &cols(&["user.id"]), &ids).unwrap();
        assert_eq!((r.lines_total, r.lines_matched), (3, 1));
        let ids = MatchSet::from_values(&[json!("42"), json!(7.5), json!("b@x")]);
        let r = find(LINES.as_bytes(), &cols(&["USER.ID", "user.email"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 2);
        assert_eq!(r.bytes_scanned, LINES.len() as u64);
    }

    #[test]
    fn composite_matches_need_every_column() {
        let ids = MatchSet::default().with_composites(&[json!([
            {"column": "last", "value": "Doe"}, {"column": "name", "value": "Jane"}])]);
        let r = find(LINES.as_bytes(), &cols(&["name", "last"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 1);
    }

    #[test]
    fn gzip_streams_and_a_malformed_line_is_an_error() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(LINES.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..]));
        let r = find(
            reader,
            &cols(&["name"]),
            &MatchSet::from_values(&[json!("Jane")]),
        )
        .unwrap();
        assert_eq!(r.lines_matched, 2);
        let bad = "{\"a\": 1}\n[1, 2]\n";
        assert!(matches!(
            find(
                bad.as_bytes(),
                &cols(&["a"]),
                &MatchSet::from_values(&[json!(1)])
            ),
            Err(JsonFindError::Malformed { line: 2 })
        ));
    }
}
