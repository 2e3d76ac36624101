//! The paths a Rust file names: `use` trees and inline `crate::…`, `super::…`, `self::…`
//! (and `lethe::…` in the binary), each made absolute from the module it is written in,
//! inline `mod` blocks included. Comments and string and character literals are blanked
//! first, line breaks kept, so a path in a doc comment or a message is no dependency.

/// A path one file names, absolute from the crate root, and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub path: Vec<String>,
    pub line: usize,
    /// Named by a `pub use` (any `pub(…)` too): the module re-exports it under this name.
    pub reexport: Option<String>,
    /// A `use` path that starts with a child module's name, if the module has that child
    /// (else it names another crate).
    pub relative: bool,
}

/// The module path of a file under `src/` (`api/v1/jobs.rs` → `api::v1::jobs`); the
/// binary's `main.rs` is the module `main`.
pub fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    match parts.as_slice() {
        [one] if one == "lib" => Vec::new(),
        _ => {
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            parts
        }
    }
}

/// The text with comments, strings and character literals replaced by spaces.
pub fn blank(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_lines = |out: &mut String, from: &[char]| {
        out.extend(from.iter().map(|c| if *c == '\n' { '\n' } else { ' ' }))
    };
    while i < chars.len() {
        let end = skip_literal(&chars, i);
        if end > i {
            keep_lines(&mut out, &chars[i..end]);
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The end of a comment or literal starting at `i`, or `i` when none starts there.
fn skip_literal(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let ident = |k: usize| at(k).is_alphanumeric() || at(k) == '_';
    let ident_before = i > 0 && ident(i - 1);
    // `br"…"`: a raw byte string's `r` follows its `b`.
    let raw_start = !ident_before || (at(i - 1) == 'b' && !(i > 1 && ident(i - 2)));
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..chars.len())
            .find(|&k| at(k) == '\n')
            .unwrap_or(chars.len()),
        ('/', '*') => {
            let (mut depth, mut k) = (1, i + 2);
            while k < chars.len() && depth > 0 {
                match (at(k), at(k + 1)) {
                    ('/', '*') => (depth, k) = (depth + 1, k + 2),
                    ('*', '/') => (depth, k) = (depth - 1, k + 2),
                    _ => k += 1,
                }
            }
            k
        }
        ('"', _) => {
            let mut k = i + 1;
            while k < chars.len() && at(k) != '"' {
                k += if at(k) == '\\' { 2 } else { 1 };
            }
            (k + 1).min(chars.len())
        }
        ('r', '"' | '#') if raw_start => {
            let hashes = (i + 1..chars.len()).take_while(|&k| at(k) == '#').count();
            if at(i + 1 + hashes) != '"' {
                return i;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            (i + 2 + hashes..chars.len())
                .find(|&k| chars[k..].starts_with(&close))
                .map_or(chars.len(), |k| k + close.len())
        }
        ('\'', '\\') => (i + 3..chars.len())
            .find(|&k| at(k) == '\'')
            .map_or(i, |k| k + 1),
        ('\'', _) if at(i + 2) == '\'' => i + 3,
        _ => i,
    }
}

/// Every path `text` (the file `rel` under `src/`) names.
pub fn paths_in(rel: &str, text: &str) -> Vec<Named> {
    let mut reader = Reader {
        code: blank(text),
        file_module: module_of(rel),
        root: if rel == "main.rs" { "lethe" } else { "crate" },
        scopes: Vec::new(),
        depth: 0,
        out: Vec::new(),
    };
    let mut i = 0;
    while i < reader.code.len() {
        i = reader.step(i);
    }
    reader.out
}

/// One file's blanked code read front to back, with the inline `mod` blocks it is in.
struct Reader {
    code: String,
    file_module: Vec<String>,
    /// `crate`, or `lethe` in the binary.
    root: &'static str,
    /// Each inline module open here, with the brace depth it opened at.
    scopes: Vec<(String, usize)>,
    depth: usize,
    out: Vec<Named>,
}

impl Reader {
    /// Reads what starts at `i`; where the next thing starts.
    fn step(&mut self, i: usize) -> usize {
        let code = self.code.as_str();
        match code.as_bytes()[i] {
            b'{' => self.depth += 1,
            b'}' => {
                self.depth = self.depth.saturating_sub(1);
                if self.scopes.last().is_some_and(|(_, d)| *d == self.depth) {
                    self.scopes.pop();
                }
            }
            _ if word_at(code, i, "mod") => {
                if let Some((name, open)) = inline_mod(code, i + 3) {
                    self.scopes.push((name, self.depth));
                    self.depth += 1;
                    return open + 1;
                }
            }
            _ if word_at(code, i, "use") => return self.read_use(i),
            _ => {
                if let Some(len) = path_at(code, i, self.root) {
                    self.read_path(i, len);
                    return i + len;
                }
            }
        }
        i + 1
    }

    /// The paths of the `use` at `i`; where it ends.
    fn read_use(&mut self, i: usize) -> usize {
        let code = self.code.as_str();
        let end = code[i..].find(';').map_or(code.len(), |e| i + e);
        let line = line_of(code, i);
        let reexport = is_pub_before(code, i);
        let here = module_here(&self.file_module, &self.scopes);
        for (raw, name) in expand(&code[i + 3..end]) {
            if let Some((path, relative)) = absolute(&raw, &here, self.root, true) {
                let reexport = reexport.then_some(name);
                self.out.push(Named {
                    path,
                    line,
                    reexport,
                    relative,
                });
            }
        }
        end
    }

    /// The inline path of `len` bytes at `i`.
    fn read_path(&mut self, i: usize, len: usize) {
        let code = self.code.as_str();
        let raw: Vec<String> = code[i..i + len].split("::").map(str::to_owned).collect();
        let here = module_here(&self.file_module, &self.scopes);
        if let Some((path, relative)) = absolute(&raw, &here, self.root, false) {
            self.out.push(Named {
                path,
                line: line_of(code, i),
                reexport: None,
                relative,
            });
        }
    }
}

/// The module at a point of the file: its own, then the inline `mod` blocks around.
fn module_here(file_module: &[String], scopes: &[(String, usize)]) -> Vec<String> {
    let mut module = file_module.to_vec();
    module.extend(scopes.iter().map(|(name, _)| name.clone()));
    module
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the keyword `word` stands at `i` (not inside a longer name, not after `$`).
fn word_at(code: &str, i: usize, word: &str) -> bool {
    let bytes = code.as_bytes();
    code[i..].starts_with(word)
        && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b'$'))
        && bytes.get(i + word.len()).is_none_or(|b| !is_ident(*b))
}

/// `name {` after `mod`: the inline module's name and where its brace is.
fn inline_mod(code: &str, from: usize) -> Option<(String, usize)> {
    let rest = &code[from..];
    let name_start = rest.len() - rest.trim_start().len();
    let name_len = rest[name_start..]
        .bytes()
        .take_while(|b| is_ident(*b))
        .count();
    let after = &rest[name_start + name_len..];
    let brace = after.len() - after.trim_start().len();
    (name_len > 0 && after[brace..].starts_with('{')).then(|| {
        let name = rest[name_start..name_start + name_len].to_owned();
        (name, from + name_start + name_len + brace)
    })
}

/// Whether `pub` or `pub(…)` comes right before the `use` at `i`.
fn is_pub_before(code: &str, i: usize) -> bool {
    let before = code[..i].trim_end();
    let before = match before.strip_suffix(')') {
        Some(b) => b.rfind('(').map_or(b, |p| &b[..p]).trim_end(),
        None => before,
    };
    before.ends_with("pub")
        && !before[..before.len() - 3]
            .bytes()
            .last()
            .is_some_and(is_ident)
}

/// The length of an inline path (`crate::a::b`, `super::x`, `self::y`) starting at `i`.
fn path_at(code: &str, i: usize, root: &str) -> Option<usize> {
    let first = [root, "super", "self"]
        .into_iter()
        .find(|w| word_at(code, i, w))?;
    let bytes = code.as_bytes();
    let mut end = i + first.len();
    let mut segments = 0;
    while code[end..].starts_with("::") {
        let len = code[end + 2..].bytes().take_while(|b| is_ident(*b)).count();
        if len == 0 {
            break;
        }
        end += 2 + len;
        segments += 1;
    }
    let preceded_by_path = i >= 2 && &bytes[i - 2..i] == b"::";
    (segments > 0 && !preceded_by_path).then_some(end - i)
}

fn line_of(code: &str, i: usize) -> usize {
    code[..i].bytes().filter(|b| *b == b'\n').count() + 1
}

/// A `use` tree as flat paths, each with the name it binds: `a::{b, c::{d as e}}` →
/// `a::b` (b), `a::c::d` (e).
pub fn expand(tree: &str) -> Vec<(Vec<String>, String)> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    expand_into(tree.trim(), &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let Some(open) = tree.find('{') else {
        let (path, alias) = match tree.split_once(" as ") {
            Some((p, a)) => (p.trim(), Some(a.trim())),
            None => (tree.trim(), None),
        };
        let mut full = prefix.clone();
        full.extend(
            path.split("::")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        );
        if full.last().is_some_and(|s| s == "self") {
            full.pop();
        }
        let name = alias.map(str::to_owned).or_else(|| full.last().cloned());
        if let Some(name) = name.filter(|n| n != "*" && n != "_") {
            out.push((full, name));
        }
        return;
    };
    let head: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let depth_before = prefix.len();
    prefix.extend(head);
    for item in split_top(inner) {
        expand_into(item, prefix, out);
    }
    prefix.truncate(depth_before);
}

/// `a, b::{c, d}, e` → `a`, `b::{c, d}`, `e`.
fn split_top(list: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (k, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(list[start..k].trim());
                start = k + 1;
            }
            _ => {}
        }
    }
    items.push(list[start..].trim());
    items.into_iter().filter(|s| !s.is_empty()).collect()
}

/// `raw` made absolute from `here`; None for another crate's path. A `use` path may
/// also start with the name of a module `here` declares (`use s3::S3Store;`): it comes
/// back relative (true), to be kept only when `here` has that child.
fn absolute(
    raw: &[String],
    here: &[String],
    root: &str,
    in_use: bool,
) -> Option<(Vec<String>, bool)> {
    let (first, mut rest) = raw.split_first()?;
    let mut base = match first.as_str() {
        f if f == root => Vec::new(),
        "self" => here.to_vec(),
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        _ if in_use => {
            let mut path = here.to_vec();
            path.extend(raw.iter().cloned());
            return Some((path, true));
        }
        _ => return None,
    };
    while let Some((next, tail)) = rest.split_first() {
        if next != "super" {
            break;
        }
        base.pop();
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some((base, false))
}
