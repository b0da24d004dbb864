//! The layering `src/lib.rs` documents, checked against the sources: SQL only in
//! `src/db/`, and every module's `crate::` imports within what its layer allows, with no
//! cycle. A new module, or an import that points the wrong way, fails here.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// What each top-level module may import from the crate. Keep in step with `src/lib.rs`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("domain", &[]),
    ("metrics", &[]),
    ("shutdown", &[]),
    ("readiness", &[]),
    ("telemetry", &["config"]),
    ("pg", &["config"]),
    ("db", &["config", "domain"]),
    ("events", &["domain"]),
    ("error", &["db", "domain"]),
    ("search_index", &["db", "domain"]),
    ("retention", &["db", "metrics"]),
    ("webhooks", &["config", "db", "metrics"]),
    ("writer", &["db", "domain", "error", "events", "metrics", "search_index", "webhooks"]),
    ("hub", &["db", "domain", "events", "metrics"]),
    ("auth", &["config", "db", "domain", "error"]),
    ("relay", &["auth", "db", "domain", "events", "hub", "metrics"]),
    ("state", &["auth", "config", "events", "hub", "metrics", "relay", "writer"]),
    ("service", &["auth", "config", "db", "domain", "error", "events", "metrics", "state", "writer"]),
    ("dto", &["db", "domain", "service", "writer"]),
    ("http", &["auth", "db", "domain", "dto", "error", "metrics", "service", "state"]),
    ("gateway", &["auth", "db", "domain", "dto", "error", "hub", "service", "state"]),
    ("openapi", &["events", "gateway", "http"]),
    (
        "startup",
        &[
            "auth",
            "config",
            "events",
            "gateway",
            "http",
            "hub",
            "metrics",
            "openapi",
            "relay",
            "retention",
            "service",
            "state",
            "webhooks",
            "writer",
        ],
    ),
    ("backup", &["config", "db", "pg"]),
    ("admin_cli", &["auth", "backup", "config", "db", "domain", "relay", "service"]),
    ("cli", &["admin_cli", "backup", "config", "db", "openapi", "pg", "readiness", "shutdown", "startup", "telemetry"]),
    ("os_service", &["cli", "config", "telemetry"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The file's code without comments and without its unit tests (which may use anything).
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The top-level module a file belongs to (`src/db/users.rs` → `db`).
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Every top-level module named after `crate::`, including inside `use crate::{a, b::c}`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at depth 0 of the brace group, each the first segment of a path.
            let mut depth = 0;
            let mut expecting_name = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expecting_name = true,
                    c if depth == 0 && expecting_name && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if depth == 0 && expecting_name && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        expecting_name = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn sql_is_written_only_in_the_db_module() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let db = src().join("db");
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| !path.starts_with(&db))
        .filter(|path| code_of(path).contains("sqlx::query"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "sqlx::query outside src/db/: {offenders:?}");
}

#[test]
fn every_module_imports_only_what_its_layer_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(module, deps)| (*module, deps.iter().copied().collect())).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let module = module_of(path);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(may_use) = allowed.get(module.as_str()) else {
            violations.push(format!("{module}: a module without a row in ALLOWED (and src/lib.rs)"));
            continue;
        };
        for used in crate_imports(&code_of(path)) {
            if used != module && !may_use.contains(used.as_str()) {
                violations.push(format!("{}: {module} imports crate::{used}", path.display()));
            }
        }
    }
    assert!(violations.is_empty(), "imports against the layering:\n{}", violations.join("\n"));
}

#[test]
fn the_layering_has_no_cycle() {
    let graph: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // Every module's allowed imports come before it in ALLOWED, which orders them.
    let mut seen = BTreeSet::new();
    for (module, deps) in ALLOWED {
        for dep in *deps {
            assert!(graph.contains_key(dep), "{module} may import {dep}, which has no row");
            assert!(
                seen.contains(dep),
                "{module} may import {dep}, which is not below it: a cycle or a misordered row"
            );
        }
        seen.insert(*module);
    }
}

#[test]
fn the_import_scanner_reads_groups_and_paths() {
    let imports = crate_imports("use crate::{db::{self, x}, domain::UserId, error};\nlet a = crate::hub::Hub::new();");
    let names: Vec<&str> = imports.iter().map(String::as_str).collect();
    assert_eq!(names, ["db", "domain", "error", "hub"]);
}
