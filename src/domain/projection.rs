//! Partition projection (Athena): which object keys are a projected table's.
//!
//! Athena reads a projected table only at the paths its `storage.location.template` (or,
//! without one, the Hive layout `k1=v/k2=v/` under the table location) generates from
//! the values each key's projection allows. An object is the table's when its key is
//! such a path followed by a name: each `${key}` fills exactly one path segment (a date
//! whose format holds `/` fills as many as it generates) and its value is one the key's
//! projection yields (`enum` values, an `integer` range at its interval and digits, a
//! `date` in its format and range). A key whose projection cannot be checked here
//! (`injected`, an unknown type, a format or range Lethe does not read) takes any value:
//! Athena could read it, so it is the table's.

use std::collections::BTreeMap;

use super::data_mapper::TableDef;
use super::partition::split_template;

mod date;

use date::DateFormat;

/// A projected table's layout: the template after its fixed prefix, and each key's rule.
#[derive(Debug, Clone)]
pub struct Projection {
    tokens: Vec<Token>,
    rules: Vec<Rule>,
    /// Hive layout: values are percent-encoded in the path.
    hive: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    /// A partition key, by its index in the table's keys.
    Key(usize),
}

/// The values a key's projection yields.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Enum(Vec<String>),
    Integer {
        min: i128,
        max: i128,
        interval: i128,
        digits: Option<usize>,
    },
    Date {
        format: DateFormat,
        start: Option<date::Stamp>,
        end: Option<date::Stamp>,
    },
    /// Any one-segment value (`injected`, or a projection not checked here).
    Any,
}

impl Projection {
    /// The projection of a table with `projection.enabled`: the fixed prefix to list and
    /// its layout, with notes on keys whose values are not checked. Fails when the
    /// template names no key, a key is missing from it or two keys are adjacent.
    pub fn of_table(def: &TableDef) -> Result<(String, Projection, Vec<String>), String> {
        let names = &def.partition_keys;
        let mut notes = Vec::new();
        let rules: Vec<Rule> = names
            .iter()
            .map(|n| Rule::of(&def.parameters, n, &mut notes))
            .collect();
        let (root, tokens, hive) = match def.location_template() {
            Some(template) => {
                let (root, rest) = split_template(template).ok_or_else(|| {
                    format!("storage.location.template {template:?} names no partition key")
                })?;
                (root.to_owned(), template_tokens(rest, names)?, false)
            }
            None => {
                let location = def.location.clone().ok_or("the table has no location")?;
                let mut tokens = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    tokens.push(Token::Literal(format!("{}=", name.to_ascii_lowercase())));
                    tokens.push(Token::Key(i));
                    tokens.push(Token::Literal("/".into()));
                }
                (location, tokens, true)
            }
        };
        let root = if root.ends_with('/') {
            root
        } else {
            format!("{root}/")
        };
        let projection = Projection {
            tokens,
            rules,
            hive,
        };
        Ok((root, projection, notes))
    }

    /// The partition values of an object key relative to the fixed prefix, when the key is
    /// the table's (a generated path followed by a name); None when it is not.
    pub fn values(&self, relative_key: &str) -> Option<Vec<String>> {
        self.split(relative_key).map(|(values, _)| values)
    }

    /// As [`Projection::values`], with the key's part below its generated path (the
    /// partition location): its name, after any folders of its own.
    pub fn split<'a>(&self, relative_key: &'a str) -> Option<(Vec<String>, &'a str)> {
        let mut found = vec![None; self.rules.len()];
        let mut name = 0;
        if !self.fit(relative_key, 0, &mut found, &mut name) {
            return None;
        }
        let values = found.into_iter().collect::<Option<Vec<_>>>()?;
        Some((values, &relative_key[relative_key.len() - name..]))
    }

    /// Whether `rest` fits the tokens from `t` on, filling `found` and the length of the
    /// part after the generated path (`name`).
    fn fit(&self, rest: &str, t: usize, found: &mut Vec<Option<String>>, name: &mut usize) -> bool {
        let i = match self.tokens.get(t) {
            // The object's name follows the generated folders.
            None => {
                *name = rest.len();
                return !rest.is_empty() && !rest.starts_with('/');
            }
            Some(Token::Literal(l)) => {
                return rest
                    .strip_prefix(l.as_str())
                    .is_some_and(|r| self.fit(r, t + 1, found, name));
            }
            Some(Token::Key(i)) => *i,
        };
        let rule = &self.rules[i];
        let slashes = rule.slashes();
        // The value holds exactly `slashes` slashes and something after the last one.
        let cuts: Vec<usize> = rest
            .match_indices('/')
            .map(|(p, _)| p)
            .take(slashes + 1)
            .collect();
        if cuts.len() < slashes {
            return false;
        }
        let lo = if slashes == 0 {
            1
        } else {
            cuts[slashes - 1] + 2
        };
        let hi = cuts.get(slashes).copied().unwrap_or(rest.len());
        for end in (lo..=hi).filter(|&e| rest.is_char_boundary(e)) {
            let raw = &rest[..end];
            let value = if self.hive {
                super::partition::percent_decode(raw)
            } else {
                raw.to_owned()
            };
            if found[i].as_ref().is_some_and(|v| *v != value) || !rule.accepts(&value) {
                continue;
            }
            let previous = found[i].replace(value);
            if self.fit(&rest[end..], t + 1, found, name) {
                return true;
            }
            found[i] = previous;
        }
        false
    }
}

/// The template after its fixed prefix as literals and keys (each key of the table once
/// at least, none other, never two adjacent).
fn template_tokens(rest: &str, names: &[String]) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = if rest.ends_with('/') {
        rest.to_owned()
    } else {
        format!("{rest}/")
    };
    while let Some(start) = rest.find("${") {
        let end = start
            + rest[start..]
                .find('}')
                .ok_or_else(|| format!("storage.location.template: unclosed ${{ in {rest:?}"))?;
        let name = rest[start + 2..end].trim();
        let i = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("storage.location.template names ${{{name}}}, which is no partition key")
            })?;
        if start > 0 {
            tokens.push(Token::Literal(rest[..start].to_owned()));
        } else if matches!(tokens.last(), Some(Token::Key(_))) {
            return Err(
                "storage.location.template has two adjacent keys: their values cannot be told apart"
                    .into(),
            );
        }
        tokens.push(Token::Key(i));
        rest = rest[end + 1..].to_owned();
    }
    if !rest.is_empty() {
        tokens.push(Token::Literal(rest));
    }
    for (i, name) in names.iter().enumerate() {
        if !tokens.contains(&Token::Key(i)) {
            return Err(format!(
                "storage.location.template has no ${{{name}}} for the partition key {name}"
            ));
        }
    }
    Ok(tokens)
}

impl Rule {
    /// The rule `projection.<name>.*` declares (Any, with a note, when not checkable).
    fn of(params: &BTreeMap<String, String>, name: &str, notes: &mut Vec<String>) -> Rule {
        let param = |p: &str| {
            let key = format!("projection.{name}.{p}");
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                .map(|(_, v)| v.trim().to_owned())
        };
        let ty = param("type").unwrap_or_default().to_ascii_lowercase();
        let rule = match ty.as_str() {
            "enum" => {
                param("values").map(|v| Rule::Enum(v.split(',').map(str::to_owned).collect()))
            }
            "integer" => integer_rule(param("range"), param("interval"), param("digits")),
            "date" => param("format")
                .and_then(|f| DateFormat::parse(&f))
                .and_then(|format| {
                    let range = param("range")?;
                    let (start, end) = range.split_once(',')?;
                    let bound = |b: &str| format.bound(b.trim());
                    Some(Rule::Date {
                        start: bound(start)?,
                        end: bound(end)?,
                        format,
                    })
                }),
            "injected" => Some(Rule::Any),
            _ => None,
        };
        rule.unwrap_or_else(|| {
            notes.push(format!(
                "partition projection of {name} (type {ty:?}) is not checked by Lethe: every value in its place of the template is the table's"
            ));
            Rule::Any
        })
    }

    /// How many `/` a value holds (a date format may generate several folders).
    fn slashes(&self) -> usize {
        match self {
            Rule::Date { format, .. } => format.slashes(),
            _ => 0,
        }
    }

    /// Whether the projection yields this value.
    fn accepts(&self, value: &str) -> bool {
        match self {
            Rule::Enum(values) => values.iter().any(|v| v == value || v.trim() == value),
            Rule::Integer {
                min,
                max,
                interval,
                digits,
            } => {
                let Ok(n) = value.parse::<i128>() else {
                    return false;
                };
                let text = match digits {
                    Some(width) => format!("{n:0width$}"),
                    None => n.to_string(),
                };
                text == value && (min..=max).contains(&&n) && (n - min) % interval == 0
            }
            Rule::Date { format, start, end } => format.read(value).is_some_and(|stamp| {
                start.is_none_or(|s| stamp >= s) && end.is_none_or(|e| stamp <= e)
            }),
            Rule::Any => !value.is_empty(),
        }
    }
}

/// An integer projection (None when its range cannot be read).
fn integer_rule(
    range: Option<String>,
    interval: Option<String>,
    digits: Option<String>,
) -> Option<Rule> {
    let range = range?;
    let (min, max) = range.split_once(',')?;
    let interval = match interval {
        Some(i) => i.parse::<i64>().ok().filter(|i| *i > 0).map(i128::from)?,
        None => 1,
    };
    let digits = match digits {
        Some(d) => Some(d.parse::<usize>().ok().filter(|d| (1..=40).contains(d))?),
        None => None,
    };
    // Bounds of 64 bits: their differences fit an i128.
    let bound = |b: &str| b.trim().parse::<i64>().ok().map(i128::from);
    Some(Rule::Integer {
        min: bound(min)?,
        max: bound(max)?,
        interval,
        digits,
    })
}

#[cfg(test)]
mod tests;
