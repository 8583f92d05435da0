//! The suite's layout: shared fixtures live in `tests/it/helpers/`, and no file of the
//! suite, `helpers/` included, imports a test file (`crate::<test module>::…`), so
//! editing one test cannot break another.

use std::path::{Path, PathBuf};

use crate::helpers::rust_source::code_only;

/// The modules any file of the suite may import from: the fixtures and the test PKI.
const SHARED: [&str; 2] = ["helpers", "pki"];

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Each path of `source` into a module of the crate other than the [`SHARED`] ones
/// (a path through the module, or the module named in a grouped `use` of the crate
/// root), with its line number.
fn test_module_imports(source: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let names: Vec<String> = if let Some(group) = after.strip_prefix('{') {
                group
                    .split(['}', ';'])
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|item| ident(item.trim()))
                    .filter(|name| !name.is_empty())
                    .collect()
            } else {
                let name = ident(after);
                if after[name.len()..].starts_with("::") {
                    vec![name]
                } else {
                    // A macro exported at the root (`crate::both_backends`), not a module.
                    vec![]
                }
            };
            for name in names {
                if !SHARED.contains(&name.as_str()) {
                    found.push((n + 1, "crate::".to_owned() + &name));
                }
            }
        }
    }
    found
}

#[test]
fn no_file_of_the_suite_imports_a_test_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut offences = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        for (line, path) in test_module_imports(&code_only(&source)) {
            let shown = file.strip_prefix(&root).unwrap_or(file).display();
            offences.push(format!("{shown}:{line}: {path}"));
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("helpers/mod.rs")),
        "the fixtures live in tests/it/helpers/"
    );
    assert!(
        offences.is_empty(),
        "test files import other test files; move what they share into tests/it/helpers/:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_layout_check_sees_each_form_of_import() {
    // Written with `CRATE` so that this file does not break its own rule.
    let source = "use CRATE::sync::{setup, Ctx};\n\
                  use CRATE::helpers::{authed, TestApp};\n\
                  use CRATE::{ingest, pki};\n\
                  let f = CRATE::view::MYSQL_ENV;\n\
                  macro_rules! m { () => { $CRATE::helpers::spawn_app } }\n\
                  use CRATE::both_backends;\n\
                  pub(crate) fn erpsync_crate() {}\n"
        .replace("CRATE", "crate");
    assert_eq!(
        test_module_imports(&source),
        [
            (1, "crate::sync".to_owned()),
            (3, "crate::ingest".to_owned()),
            (4, "crate::view".to_owned()),
        ]
    );
}
