//! The module map in `src/lib.rs`, held against the code. Every path a file under `src/`
//! names (`use` trees, inline `crate::…`, `super::…`, `self::…`; a `pub use` followed to
//! what it re-exports; test code included) is an edge between the two top-level modules
//! it joins, and between the two files or folders of the folder both lie in. It fails,
//! naming the files and lines, on a cycle among top-level modules or among the files of a
//! folder, on a top-level edge the map does not allow, and on an edge the map marks as
//! still to go (`⇢`) that is gone; and when ARCHITECTURE.md's layers drift from the map.

mod graph;
mod paths;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use graph::{Edges, Graph, first_cycle};

/// Edges between sibling files that close a cycle today: (folder, from, to, what `from`
/// takes). None are left; one listed here must go, and the test fails once it is gone
/// until it is struck, so the list only shrinks.
const SIBLING_EDGES_TO_GO: &[(&str, &str, &str, &str)] = &[];

/// The map in `src/lib.rs`: each module's line, top to bottom, what it may use, and
/// the edges still to go.
#[derive(Debug, Default)]
struct Map {
    lines: Vec<String>,
    order: Vec<String>,
    allowed: BTreeMap<String, BTreeSet<String>>,
    to_go: BTreeSet<(String, String)>,
}

/// Reads the map: the ```text block of `lib.rs`'s module documentation, a line per
/// module, `name → a, b` (or `name` alone), and `name ⇢ x (why)` for an edge to go.
fn read_map(lib_rs: &str) -> Result<Map, String> {
    let doc: Vec<&str> = lib_rs
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "```text")
        .ok_or("no ```text block")?;
    let mut map = Map::default();
    for line in doc[start + 1..].iter().take_while(|l| **l != "```") {
        map.lines.push(line.to_string());
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        if let Some(to) = rest.strip_prefix('⇢') {
            let to = to.split_whitespace().next().ok_or("⇢ names no module")?;
            map.to_go.insert((name.to_owned(), to.to_owned()));
            continue;
        }
        let uses = match rest.strip_prefix('→') {
            Some(list) => list.split(',').map(|m| m.trim().to_owned()).collect(),
            None if rest.is_empty() => BTreeSet::new(),
            None => return Err(format!("cannot read the map's line {line:?}")),
        };
        map.order.push(name.to_owned());
        map.allowed.insert(name.to_owned(), uses);
    }
    Ok(map)
}

/// What is wrong with the map itself: a module listed twice or not at all, an arrow that
/// does not point at a line below, an edge to go that does not point up.
fn map_problems(map: &Map, modules: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let listed: BTreeSet<String> = map.order.iter().cloned().collect();
    if listed.len() != map.order.len() {
        problems.push("the map lists a module on two lines".to_owned());
    }
    if &listed != modules {
        problems.push(format!(
            "the map lists {listed:?}, src/ has the modules {modules:?}"
        ));
    }
    let rank = |m: &str| map.order.iter().position(|o| o == m);
    for (from, uses) in &map.allowed {
        for to in uses {
            if !(rank(to) > rank(from) && rank(to).is_some()) {
                problems.push(format!("the map's {from} → {to} does not point down"));
            }
        }
    }
    for (from, to) in &map.to_go {
        if !(rank(to) < rank(from) && rank(to).is_some()) {
            problems.push(format!("the map's {from} ⇢ {to} does not point up"));
        }
    }
    problems
}

/// What is wrong with the code against the map: a cycle, an edge the map does not allow,
/// an edge to go that is gone.
fn code_problems(
    graph: &Graph,
    map: &Map,
    sibling_to_go: &[(&str, &str, &str, &str)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let top_to_go: BTreeSet<(String, String)> = map.to_go.clone();
    for ((from, to), evidence) in &graph.top {
        let allowed = map.allowed.get(from).is_some_and(|a| a.contains(to));
        if !allowed && !top_to_go.contains(&(from.clone(), to.clone())) {
            problems.push(format!(
                "{from} uses {to}, which the map in src/lib.rs does not allow: {}",
                evidence.join("; ")
            ));
        }
    }
    for (from, to) in &top_to_go {
        if !graph.top.contains_key(&(from.clone(), to.clone())) {
            problems.push(format!("{from} ⇢ {to} is gone: strike it from the map"));
        }
    }
    if let Some(cycle) = first_cycle(&graph.top) {
        problems.push(format!("a cycle of top-level modules: {cycle}"));
    }
    for (folder, edges) in &graph.siblings {
        let mut edges: Edges = edges.clone();
        for (f, from, to, _) in sibling_to_go.iter().filter(|e| e.0 == folder) {
            let key = (from.to_string(), to.to_string());
            if edges.remove(&key).is_none() {
                problems.push(format!("src/{f}: {from} → {to} is gone: strike it"));
            }
        }
        if let Some(cycle) = first_cycle(&edges) {
            problems.push(format!("a cycle in src/{folder}/: {cycle}"));
        }
    }
    problems
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as (path relative to `base`, text).
fn sources(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(base, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The top-level modules: `lib.rs`'s `pub mod` lines, and the binary, `main`.
fn top_level_modules(lib_rs: &str) -> BTreeSet<String> {
    let mut modules: BTreeSet<String> = lib_rs
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    modules.insert("main".to_owned());
    modules
}

#[test]
fn the_module_map_in_lib_rs_holds_and_no_modules_form_a_cycle() {
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files.sort();
    let lib_rs = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let map = read_map(&lib_rs).unwrap();
    let mut problems = map_problems(&map, &top_level_modules(&lib_rs));
    let graph = Graph::of(&files);
    assert!(graph.top.len() > 40, "{:?}", graph.top.keys());
    problems.extend(code_problems(&graph, &map, SIBLING_EDGES_TO_GO));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn architecture_md_shows_the_map_and_its_layer_table_names_what_exists() {
    let lib_rs = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let map = read_map(&lib_rs).unwrap();
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let layers = section(&architecture, "## Layers");
    let block = map.lines.join("\n");
    assert!(
        layers.contains(&block),
        "ARCHITECTURE.md's Layers lack the map:\n{block}"
    );

    let mut files = Vec::new();
    let src = root().join("src");
    sources(&src, &src, &mut files);
    let mut named = BTreeSet::new();
    for row in layers.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').collect();
        named.extend(cells[1].split('`').skip(1).step_by(2).map(str::to_owned));
        for span in row
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| s.contains("::"))
        {
            assert!(
                names_what_exists(&files, span),
                "ARCHITECTURE.md's layer table names `{span}`, which src/ lacks"
            );
        }
    }
    let mut top = top_level_modules(&lib_rs);
    top.remove("main");
    assert_eq!(named, top, "ARCHITECTURE.md's layer table, first column");
}

/// Whether `span` (`db::types`, `db::task::mark_recorded`) is a module of `files`, or an
/// item one of them defines.
fn names_what_exists(files: &[(String, String)], span: &str) -> bool {
    let path: Vec<String> = span.split("::").map(str::to_owned).collect();
    let modules: BTreeSet<Vec<String>> =
        files.iter().map(|(rel, _)| paths::module_of(rel)).collect();
    let Some(module) = (1..=path.len())
        .rev()
        .map(|k| &path[..k])
        .find(|p| modules.contains(*p))
    else {
        return false;
    };
    match &path[module.len()..] {
        [] => true,
        [item] => files
            .iter()
            .filter(|(rel, _)| paths::module_of(rel) == module)
            .any(|(_, text)| graph::defines(text, item)),
        _ => false,
    }
}

/// From `heading` to the next heading of its level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &text[start + heading.len()..];
    let level = heading.split(' ').next().unwrap_or("##");
    let end = rest.find(&format!("\n{level} ")).unwrap_or(rest.len());
    &rest[..end]
}

/// The checker on small made-up crates: it must see each kind of fault, or a clean run
/// of the real one means nothing.
mod checker {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    const LIB: &str = "//! ```text\n//! app → db\n//! db\n//! ```\npub mod app;\npub mod db;\n";

    #[test]
    fn a_top_level_cycle_and_an_edge_the_map_lacks_are_named_with_their_lines() {
        let crate_files = files(&[
            ("lib.rs", LIB),
            ("app.rs", "use crate::db::Pool;\n"),
            ("db.rs", "\nfn f() { crate::app::start(); }\n"),
        ]);
        let map = read_map(LIB).unwrap();
        let problems = code_problems(&Graph::of(&crate_files), &map, &[]);
        let all = problems.join("\n");
        assert!(all.contains("db uses app, which the map"), "{all}");
        assert!(all.contains("db.rs:2"), "{all}");
        assert!(
            all.contains("cycle of top-level modules: app → db → app")
                || all.contains("db → app → db"),
            "{all}"
        );
    }

    #[test]
    fn a_cycle_between_sibling_files_is_found_through_super_and_a_re_export() {
        let crate_files = files(&[
            ("lib.rs", LIB),
            ("app.rs", ""),
            ("db.rs", "mod a;\nmod b;\npub use b::Thing;\n"),
            ("db/a.rs", "use super::Thing;\n"),
            ("db/b.rs", "fn g() { super::a::h() }\n"),
        ]);
        let map = read_map(LIB).unwrap();
        let problems = code_problems(&Graph::of(&crate_files), &map, &[]);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("a cycle in src/db/: a → b → a")),
            "{problems:?}"
        );
    }

    #[test]
    fn comments_strings_and_other_crates_make_no_edge_and_tests_do() {
        let crate_files = files(&[
            ("lib.rs", LIB),
            (
                "app.rs",
                "//! See [`crate::db::x`].\nfn f() { let _ = \"crate::db::y\"; let c = '\"'; std::fmt::x(); }\n",
            ),
            (
                "db.rs",
                "#[cfg(test)]\nmod tests {\n    use crate::app::f;\n}\n",
            ),
        ]);
        let graph = Graph::of(&crate_files);
        let edges: Vec<_> = graph.top.keys().collect();
        assert_eq!(edges, [&("db".to_owned(), "app".to_owned())]);
    }

    #[test]
    fn a_map_arrow_that_points_up_and_a_module_it_misses_are_faults() {
        let map = read_map("//! ```text\n//! app\n//! db → app\n//! ```\n").unwrap();
        let modules: BTreeSet<String> = ["app", "db", "jobs"].map(str::to_owned).into();
        let problems = map_problems(&map, &modules).join("\n");
        assert!(
            problems.contains("db → app does not point down"),
            "{problems}"
        );
        assert!(problems.contains("src/ has the modules"), "{problems}");
    }
}
