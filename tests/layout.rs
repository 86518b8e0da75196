//! The floors of the crate, checked from the source: which module may use
//! which. Reads every file under `src/`, resolves each `crate::…` and
//! `super::…` path to the module it names, and fails on an import that goes
//! the wrong way or on two modules that import each other.
//!
//! `cargo test --test layout -- --nocapture` prints the module graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Which module a file is (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return "crate".into();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)] mod tests { … }` block
/// and without comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts with `crate::` or `super::`, with grouped imports
/// (`use crate::{a, b::c}`) expanded one level.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                rest = &rest[start.len()..];
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':').to_string();
            if rest[end..].starts_with('{') && path.ends_with(start.trim_end_matches(':')) {
                let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
                for item in rest[end + 1..close].split(',') {
                    let item = item.trim();
                    if !item.is_empty() {
                        out.push(format!("{path}::{item}"));
                    }
                }
            } else if rest[end..].starts_with('{') {
                out.push(path.clone());
            } else {
                out.push(path);
            }
            rest = &rest[end..];
        }
    }
    out
}

/// The longest known module a path names.
fn resolve(path: &str, from: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if from == "crate" {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    let mut found = None;
    let mut cur = base.clone();
    if !cur.is_empty() {
        found = Some(cur.join("::"));
    }
    for s in segs {
        cur.push(s);
        let name = cur.join("::");
        if modules.contains(&name) {
            found = Some(name);
        } else {
            break;
        }
    }
    found
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g = Graph::new();
    for f in &files {
        let from = module_of(&src, f);
        let code = code_of(&std::fs::read_to_string(f).expect("readable file"));
        let entry = g.entry(from.clone()).or_default();
        for p in paths_in(&code) {
            if let Some(to) = resolve(&p, &from, &modules) {
                if to != from {
                    entry.insert(to);
                }
            }
        }
    }
    g
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

fn is_within(m: &str, floor: &str) -> bool {
    m == floor || m.starts_with(&format!("{floor}::"))
}

/// `a` is `b` or one of its ancestors.
fn ancestor(a: &str, b: &str) -> bool {
    a == "crate" || is_within(b, a)
}

#[test]
fn floors_import_only_downwards() {
    let g = graph();
    for (from, tos) in &g {
        println!(
            "{from} -> {}",
            tos.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    // (floor, what it must never use)
    let rules: &[(&str, &[&str])] = &[
        (
            "write",
            &[
                "engine", "db", "store", "fronts", "config", "server", "cli", "testkit", "util",
            ],
        ),
        (
            "sql",
            &[
                "engine", "db", "store", "fronts", "write", "config", "server", "cli",
            ],
        ),
        (
            "store",
            &["engine", "db", "fronts", "config", "server", "cli"],
        ),
        (
            "db",
            &["engine", "store", "fronts", "config", "server", "cli"],
        ),
        ("engine", &["fronts", "server", "cli", "config"]),
        ("fronts", &["db", "store", "server", "cli"]),
    ];
    let mut wrong = Vec::new();
    for (from, tos) in &g {
        for (floor, banned) in rules {
            if !is_within(from, floor) {
                continue;
            }
            for to in tos {
                if banned.iter().any(|b| is_within(to, b)) {
                    wrong.push(format!("{from} uses {to}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the floors:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let g = graph();
    let mut mutual = Vec::new();
    for (a, tos) in &g {
        for b in tos {
            if a < b
                && !ancestor(a, b)
                && !ancestor(b, a)
                && g.get(b).is_some_and(|t| t.contains(a))
            {
                mutual.push(format!("{a} <-> {b}"));
            }
        }
    }
    // Top-level floors too: no floor may use a floor that uses it.
    let mut floors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, tos) in &g {
        for b in tos {
            if top(a) != top(b) {
                floors.entry(top(a)).or_default().insert(top(b));
            }
        }
    }
    for (a, tos) in &floors {
        for b in tos {
            if a < b && *a != "crate" && floors.get(b).is_some_and(|t| t.contains(a)) {
                mutual.push(format!("floor {a} <-> floor {b}"));
            }
        }
    }
    assert!(
        mutual.is_empty(),
        "modules that import each other:\n{}",
        mutual.join("\n")
    );
}

#[test]
fn the_resolver_finds_what_it_must() {
    let modules: BTreeSet<String> = ["engine", "engine::forward", "db", "db::passthrough"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        resolve(
            "crate::db::passthrough::Passthrough",
            "engine::forward",
            &modules
        ),
        Some("db::passthrough".into())
    );
    assert_eq!(
        resolve("super::Engine", "engine::forward", &modules),
        Some("engine".into())
    );
    let p = paths_in("use crate::{db::passthrough, engine};\nlet x = crate::db::to_value(v);");
    assert!(p.contains(&"crate::db::passthrough".to_string()), "{p:?}");
    assert!(p.contains(&"crate::engine".to_string()), "{p:?}");
    assert!(p.contains(&"crate::db::to_value".to_string()), "{p:?}");
}
