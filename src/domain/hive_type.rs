//! Hive / Glue column type strings (`struct<a:string,b:array<int>>`) parsed into a tree,
//! so match columns given as dotted paths can be checked against a table's schema.
//!
//! Names compare case-insensitively, as Glue and Athena lowercase them.

/// A column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveType {
    /// Any scalar type, lowercased with its parameters: `string`, `bigint`, `decimal(10,2)`.
    Primitive(String),
    Array(Box<HiveType>),
    Map(Box<HiveType>, Box<HiveType>),
    Struct(Vec<(String, HiveType)>),
    Union(Vec<HiveType>),
}

impl HiveType {
    /// Parses a Glue type string.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parser = Parser {
            input: raw.as_bytes(),
            pos: 0,
            depth: 0,
        };
        let ty = parser.parse_type()?;
        parser.skip_ws();
        if parser.pos != parser.input.len() {
            return Err(format!(
                "unexpected text at offset {} in {raw:?}",
                parser.pos
            ));
        }
        Ok(ty)
    }
}

impl std::fmt::Display for HiveType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HiveType::Primitive(s) => f.write_str(s),
            HiveType::Array(t) => write!(f, "array<{t}>"),
            HiveType::Map(k, v) => write!(f, "map<{k},{v}>"),
            HiveType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, ty)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}:{ty}")?;
                }
                f.write_str(">")
            }
            HiveType::Union(members) => {
                f.write_str("uniontype<")?;
                for (i, ty) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{ty}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// How deep types may nest (Hive's own limit is lower): a deeper type is an error, never
/// a stack overflow, whatever a catalog holds.
pub const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self
            .input
            .get(self.pos)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.input.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", c as char, self.pos))
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.input.get(self.pos).copied()
    }

    /// A word: anything up to a delimiter of the type grammar.
    fn word(&mut self, stops: &[u8]) -> Result<String, String> {
        self.skip_ws();
        let start = self.pos;
        while self.input.get(self.pos).is_some_and(|b| !stops.contains(b)) {
            self.pos += 1;
        }
        let word = String::from_utf8_lossy(&self.input[start..self.pos])
            .trim()
            .to_owned();
        if word.is_empty() {
            Err(format!("expected a name at offset {start}"))
        } else {
            Ok(word)
        }
    }

    fn parse_type(&mut self) -> Result<HiveType, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the type nests deeper than {MAX_DEPTH} levels"));
        }
        let ty = self.parse_type_inner();
        self.depth -= 1;
        ty
    }

    fn parse_type_inner(&mut self) -> Result<HiveType, String> {
        let name = self.word(b"<>(),:")?.to_ascii_lowercase();
        match name.as_str() {
            "array" => {
                self.expect(b'<')?;
                let inner = self.parse_type()?;
                self.expect(b'>')?;
                Ok(HiveType::Array(Box::new(inner)))
            }
            "map" => {
                self.expect(b'<')?;
                let key = self.parse_type()?;
                self.expect(b',')?;
                let value = self.parse_type()?;
                self.expect(b'>')?;
                Ok(HiveType::Map(Box::new(key), Box::new(value)))
            }
            "struct" => self.parse_struct(),
            "uniontype" => {
                self.expect(b'<')?;
                let mut members = vec![self.parse_type()?];
                while self.peek() == Some(b',') {
                    self.pos += 1;
                    members.push(self.parse_type()?);
                }
                self.expect(b'>')?;
                Ok(HiveType::Union(members))
            }
            _ => {
                let mut full = name;
                if self.peek() == Some(b'(') {
                    let params = self.word(b")")?;
                    self.expect(b')')?;
                    full.push_str(&params.replace(' ', ""));
                    full.push(')');
                }
                Ok(HiveType::Primitive(full))
            }
        }
    }

    fn parse_struct(&mut self) -> Result<HiveType, String> {
        self.expect(b'<')?;
        let mut fields = Vec::new();
        if self.peek() == Some(b'>') {
            self.pos += 1;
            return Ok(HiveType::Struct(fields));
        }
        loop {
            let name = self.word(b":<>,")?;
            self.expect(b':')?;
            fields.push((name, self.parse_type()?));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'>') => {
                    self.pos += 1;
                    return Ok(HiveType::Struct(fields));
                }
                _ => return Err(format!("expected ',' or '>' at offset {}", self.pos)),
            }
        }
    }
}

/// Finds the field a dotted path names. Only struct fields can be descended into; the
/// target must be a scalar.
pub fn field_at_path<'a>(
    columns: &'a [(String, HiveType)],
    path: &[String],
) -> Result<&'a HiveType, String> {
    let Some((first, rest)) = path.split_first() else {
        return Err("empty column path".to_owned());
    };
    let mut current =
        lookup(columns, first).ok_or_else(|| format!("the table has no column {first:?}"))?;
    let mut walked = first.clone();
    for segment in rest {
        let HiveType::Struct(fields) = current else {
            return Err(format!(
                "{walked:?} is not a struct, so it has no field {segment:?}"
            ));
        };
        current = lookup(fields, segment)
            .ok_or_else(|| format!("{walked:?} has no field {segment:?}"))?;
        walked = format!("{walked}.{segment}");
    }
    match current {
        HiveType::Primitive(_) => Ok(current),
        _ => Err(format!(
            "{walked:?} is not a scalar column; name a scalar field inside it"
        )),
    }
}

fn lookup<'a>(fields: &'a [(String, HiveType)], name: &str) -> Option<&'a HiveType> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prim(s: &str) -> HiveType {
        HiveType::Primitive(s.into())
    }

    #[test]
    fn parses_nested_glue_types() {
        let ty = HiveType::parse(
            "struct<id:bigint, contact:struct<email:string,phones:array<string>>, amount:decimal(10, 2), tags:map<string,int>>",
        )
        .unwrap();
        let HiveType::Struct(fields) = ty else {
            panic!("not a struct")
        };
        assert_eq!(fields[0], ("id".into(), prim("bigint")));
        assert_eq!(
            fields[1].1,
            HiveType::Struct(vec![
                ("email".into(), prim("string")),
                ("phones".into(), HiveType::Array(Box::new(prim("string")))),
            ])
        );
        assert_eq!(fields[2].1, prim("decimal(10,2)"));
        assert_eq!(
            fields[3].1,
            HiveType::Map(Box::new(prim("string")), Box::new(prim("int")))
        );
    }

    #[test]
    fn rejects_malformed_types() {
        for bad in [
            "struct<a:int",
            "array<>",
            "map<string>",
            "struct<a int>",
            "int>",
        ] {
            assert!(HiveType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_descend_structs_case_insensitively_and_end_on_scalars() {
        let columns = vec![
            ("ID".to_owned(), prim("bigint")),
            (
                "contact".to_owned(),
                HiveType::parse("struct<Email:string,phones:array<string>>").unwrap(),
            ),
        ];
        let path = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert!(field_at_path(&columns, &path("id")).is_ok());
        assert!(field_at_path(&columns, &path("contact.email")).is_ok());
        assert!(field_at_path(&columns, &path("contact")).is_err());
        assert!(field_at_path(&columns, &path("contact.phones")).is_err());
        assert!(field_at_path(&columns, &path("contact.fax")).is_err());
        assert!(field_at_path(&columns, &path("id.x")).is_err());
    }

    fn arb_type() -> impl Strategy<Value = HiveType> {
        let leaf = prop::sample::select(vec!["string", "bigint", "int", "double", "decimal(10,2)"])
            .prop_map(|s| HiveType::Primitive(s.to_owned()));
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|t| HiveType::Array(Box::new(t))),
                (inner.clone(), inner.clone())
                    .prop_map(|(k, v)| HiveType::Map(Box::new(k), Box::new(v))),
                prop::collection::vec(("[a-z][a-z0-9_]{0,6}", inner), 1..4)
                    .prop_map(HiveType::Struct),
            ]
        })
    }

    fn render(ty: &HiveType) -> String {
        ty.to_string()
    }

    proptest! {
        #[test]
        fn rendering_then_parsing_gives_back_the_type(ty in arb_type()) {
            prop_assert_eq!(HiveType::parse(&render(&ty)).unwrap(), ty);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,64}") {
            let _ = HiveType::parse(&s);
        }
    }

    #[test]
    fn a_type_nested_beyond_the_limit_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}int{}", "array<".repeat(10_000), ">".repeat(10_000));
        let err = HiveType::parse(&deep).unwrap_err();
        assert!(err.contains("deeper than 64"), "{err}");
        let deep_struct = format!("{}int{}", "struct<a:".repeat(100), ">".repeat(100));
        assert!(HiveType::parse(&deep_struct).is_err());
        let ok = format!("{}int{}", "array<".repeat(63), ">".repeat(63));
        assert!(HiveType::parse(&ok).is_ok());
    }
}
