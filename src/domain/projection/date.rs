//! Date projection formats (`projection.<key>.format`, a Java `DateTimeFormatter`
//! pattern): reading a path value exactly as Athena writes it, and the range's bounds.
//! Only numeric fields are read (`y`, `M`/`MM`, `d`/`dd`, `H`/`HH`, `m`/`mm`, `s`/`ss`,
//! quoted and other literals); any other pattern letter makes the format unchecked.

/// A date's fields in significance order: year, month, day, hour, minute, second.
pub type Stamp = [u32; 6];

/// A parsed date format.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    /// A field (index into a [`Stamp`]) and its letter count.
    Field {
        field: usize,
        count: usize,
    },
}

impl Part {
    /// Whether its width varies (`y`, `yyy…`, or a one-letter field).
    fn variable(&self) -> bool {
        matches!(self, Part::Field { count, .. } if *count != 2)
    }
}

impl DateFormat {
    /// The format of a pattern; None when it holds something not read here (text fields,
    /// fractions, zones, two variable-width fields side by side).
    pub fn parse(pattern: &str) -> Option<DateFormat> {
        let mut parts: Vec<Part> = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        '\'' => break,
                        other => literal.push(other),
                    }
                }
            } else if c.is_ascii_alphabetic() {
                let mut count = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    count += 1;
                }
                let field = "yMdHms".find(c)?;
                if field > 0 && count > 2 {
                    return None;
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field { field, count });
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        // In a run of adjacent fields, at most one may vary in width.
        let mut run_variable = 0;
        for part in &parts {
            match part {
                Part::Literal(_) => run_variable = 0,
                p if p.variable() => {
                    run_variable += 1;
                    if run_variable > 1 {
                        return None;
                    }
                }
                _ => {}
            }
        }
        Some(DateFormat { parts })
    }

    /// How many `/` a formatted value holds.
    pub fn slashes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.matches('/').count(),
                Part::Field { .. } => 0,
            })
            .sum()
    }

    /// A range bound: Some(None) for a bound relative to `NOW` (read as open: the window
    /// moves, and what it leaves or will reach is still the table's), None when unreadable.
    pub fn bound(&self, text: &str) -> Option<Option<Stamp>> {
        if text.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("now")) {
            return Some(None);
        }
        self.read(text).map(Some)
    }

    /// The date a value is, when the format writes exactly this text for a real date.
    pub fn read(&self, value: &str) -> Option<Stamp> {
        let mut stamp: Stamp = [1970, 1, 1, 0, 0, 0];
        let mut pos = 0;
        for (k, part) in self.parts.iter().enumerate() {
            let rest = value.get(pos..)?;
            let (field, count) = match part {
                Part::Literal(l) => {
                    rest.strip_prefix(l.as_str())?;
                    pos += l.len();
                    continue;
                }
                Part::Field { field, count } => (*field, *count),
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let width = if part.variable() {
                // Fixed-width fields right after it keep their digits.
                let reserved: usize = self.parts[k + 1..]
                    .iter()
                    .map_while(|p| matches!(p, Part::Field { count: 2, .. }).then_some(2))
                    .sum();
                digits.checked_sub(reserved)?
            } else {
                2
            };
            if width == 0 || width > digits || width > 9 {
                return None;
            }
            let text = &rest[..width];
            let n: u32 = text.parse().ok()?;
            let written = match count {
                2 => format!("{n:02}"),
                _ if field == 0 => format!("{n:0count$}"),
                _ => n.to_string(),
            };
            if written != text {
                return None;
            }
            stamp[field] = if field == 0 && count == 2 {
                2000 + n
            } else {
                n
            };
            pos += width;
        }
        (pos == value.len() && valid(&stamp)).then_some(stamp)
    }
}

fn valid(s: &Stamp) -> bool {
    let [year, month, day, hour, minute, second] = *s;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && hour < 24 && minute < 60 && second < 60
}
