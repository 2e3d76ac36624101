//! The edges the paths make: between top-level modules, and between the files (or
//! folders) of each folder; a `pub use` is followed to the module it re-exports from.

use std::collections::{BTreeMap, BTreeSet};

use crate::paths::{Named, module_of, paths_in};

/// Edges (from, to), each with where it is made (`src/file.rs:line crate::path`).
pub type Edges = BTreeMap<(String, String), Vec<String>>;

/// The module graph of a crate's `src/`.
#[derive(Debug, Default)]
pub struct Graph {
    /// Between top-level modules (`main` is the binary).
    pub top: Edges,
    /// Between the children of each folder (`jobs/object`), by the folder.
    pub siblings: BTreeMap<String, Edges>,
}

/// The modules with files, and what each re-exports: name → the path it stands for.
struct Modules {
    known: BTreeSet<Vec<String>>,
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
}

impl Modules {
    /// The module a path lands in: its longest prefix that is a module, after following
    /// the re-exports it goes through.
    fn resolve(&self, path: &[String], depth: usize) -> Vec<String> {
        for k in (0..=path.len()).rev() {
            let module = &path[..k];
            if !self.known.contains(module) {
                continue;
            }
            let target = path
                .get(k)
                .and_then(|name| self.reexports.get(module)?.get(name))
                .filter(|t| t.as_slice() != &path[..=k] && depth < 8);
            return match target {
                Some(target) => {
                    let mut through = target.clone();
                    through.extend(path[k + 1..].iter().cloned());
                    self.resolve(&through, depth + 1)
                }
                None => module.to_vec(),
            };
        }
        Vec::new()
    }

    /// Whether a relative `use` path names a child module of the file (else it names
    /// another crate).
    fn keeps(&self, file_module: &[String], named: &Named) -> bool {
        !named.relative
            || named
                .path
                .get(..file_module.len() + 1)
                .is_some_and(|child| self.known.contains(child))
    }
}

impl Graph {
    /// The graph of `files`: (path under `src/`, text).
    pub fn of(files: &[(String, String)]) -> Graph {
        let named: Vec<(String, Vec<String>, Vec<Named>)> = files
            .iter()
            .map(|(rel, text)| (rel.clone(), module_of(rel), paths_in(rel, text)))
            .collect();
        let mut modules = Modules {
            known: named.iter().map(|(_, m, _)| m.clone()).collect(),
            reexports: BTreeMap::new(),
        };
        let mut reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (_, module, paths) in &named {
            for p in paths.iter().filter(|p| modules.keeps(module, p)) {
                if let Some(name) = &p.reexport {
                    reexports
                        .entry(module.clone())
                        .or_default()
                        .insert(name.clone(), p.path.clone());
                }
            }
        }
        modules.reexports = reexports;
        let mut graph = Graph::default();
        for (rel, from, paths) in &named {
            for p in paths.iter().filter(|p| modules.keeps(from, p)) {
                let to = modules.resolve(&p.path, 0);
                let evidence = format!("src/{rel}:{} crate::{}", p.line, p.path.join("::"));
                graph.add(from, &to, evidence);
            }
        }
        graph
    }

    /// The edges a path from module `from` to module `to` makes.
    fn add(&mut self, from: &[String], to: &[String], evidence: String) {
        let shared = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        let (Some(a), Some(b)) = (from.get(shared), to.get(shared)) else {
            return;
        };
        let edges = match shared {
            0 => &mut self.top,
            _ => self.siblings.entry(from[..shared].join("/")).or_default(),
        };
        let places = edges.entry((a.clone(), b.clone())).or_default();
        if places.len() < 3 {
            places.push(evidence);
        }
    }
}

/// The first cycle among `edges` (nodes taken in name order), as `a → b → a (where a
/// uses b; where b uses a)`.
pub fn first_cycle(edges: &Edges) -> Option<String> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let mut done = BTreeSet::new();
    for start in next.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = walk(start, &next, &mut path, &mut done) {
            let places: Vec<String> = cycle
                .windows(2)
                .filter_map(|w| {
                    edges
                        .get(&(w[0].to_owned(), w[1].to_owned()))?
                        .first()
                        .cloned()
                })
                .collect();
            return Some(format!("{} ({})", cycle.join(" → "), places.join("; ")));
        }
    }
    None
}

/// Depth first from `node`; the cycle closed by the first edge back into `path`.
fn walk<'a>(
    node: &'a str,
    next: &BTreeMap<&'a str, Vec<&'a str>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<&'a str>> {
    if let Some(at) = path.iter().position(|n| *n == node) {
        let mut cycle = path[at..].to_vec();
        cycle.push(node);
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node);
    for to in next.get(node).into_iter().flatten() {
        if let Some(cycle) = walk(to, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node);
    None
}

/// Whether `text` defines `item` (a function, type, trait, constant, module or macro).
pub fn defines(text: &str, item: &str) -> bool {
    let kinds = [
        "fn",
        "struct",
        "enum",
        "trait",
        "type",
        "const",
        "static",
        "mod",
        "macro_rules!",
    ];
    kinds.iter().any(|kind| {
        text.match_indices(&format!("{kind} {item}")).any(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    })
}
