//! The source's layout, read from its own paths: no two files under `src/` refer to each
//! other, nor do more in a circle, and `storage/bulk` refers to nothing above it in
//! `storage`. `farm-studio look` draws the same arrows between folders; these tests hold
//! them between files.
//!
//! A file refers to another when it names an item through a path that reaches it:
//! `crate::…`, `super::…`, `self::…`, a child module's name, or a name a `use` bound to
//! one of these. A path goes to the deepest file it passes (`src/a/b.rs` or
//! `src/a/b/mod.rs`); an item inside a file, or inside an inline `mod`, belongs to that
//! file. Comments, string literals and `#[cfg(test)]` items are not read: a doc link is no
//! reference, and a unit test may exercise its file through the module above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::helpers::rust_source::code_only;

/// One file of the library crate: where it is and the module path it declares.
struct Source {
    path: String,
    module: Vec<String>,
    text: String,
}

/// Every file of the library crate (`src/main.rs` is a crate of its own and only names
/// the library by its name).
fn library_sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let mut sources = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("a file under the crate");
        let path = relative.to_string_lossy().replace('\\', "/");
        if path == "src/main.rs" {
            continue;
        }
        let mut module: Vec<String> = path
            .trim_start_matches("src/")
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        sources.push(Source { path, module, text });
    }
    sources
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let mut word: String = chars[start..i].iter().collect();
            if word == "r" && chars.get(i) == Some(&'#') {
                i += 1;
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                word = chars[start..i].iter().collect();
            }
            out.push(Token::Ident(word));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Punct('0'));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// The module paths that are files, each with its file.
type Files = BTreeMap<Vec<String>, String>;

/// One file's references: the file each goes to, with the paths as written.
type Refs = BTreeMap<String, BTreeSet<String>>;

/// What a path written in module `here` (a file's module plus its inline `mod`s) names,
/// as an absolute module path, or `None` when it leaves the crate.
fn absolute(
    here: &[String],
    path: &[String],
    files: &Files,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let first = path.first()?;
    let (mut base, rest): (Vec<String>, &[String]) = match first.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (here.to_vec(), &path[1..]),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        name => {
            let mut child = here.to_vec();
            child.push(name.to_owned());
            if files.contains_key(&child) {
                (here.to_vec(), path)
            } else if let Some(target) = aliases.get(name) {
                (target.clone(), &path[1..])
            } else {
                return None;
            }
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The file an absolute module path lands in: the deepest file module it passes.
fn file_of(target: &[String], files: &Files) -> Option<String> {
    (0..=target.len())
        .rev()
        .find_map(|n| files.get(&target[..n]).cloned())
}

/// The paths of one `use` tree starting at `tokens[i]`, each with the name it binds
/// (`None` for a glob or `self` of a group); returns where the tree ends.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(i) {
            Some(Token::Ident(word)) if word == "as" => {
                if let Some(Token::Ident(alias)) = tokens.get(i + 1) {
                    out.push((path.clone(), Some(alias.clone())));
                    return i + 2;
                }
                return i + 1;
            }
            Some(Token::Ident(word)) => {
                if word == "self" && !path.is_empty() {
                    // `use a::b::{self}` binds `b`.
                } else {
                    path.push(word.clone());
                }
                i += 1;
                if tokens.get(i) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                if tokens.get(i) == Some(&Token::Ident("as".to_owned())) {
                    continue;
                }
                let name = path.last().cloned();
                out.push((path, name));
                return i;
            }
            Some(Token::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        Some(Token::Punct('}')) | None => return i + 1,
                        Some(Token::Punct(',')) => i += 1,
                        _ => i = use_tree(tokens, i, &path, out),
                    }
                }
            }
            _ => {
                out.push((path.clone(), None));
                return i;
            }
        }
    }
}

/// `#[cfg(test)]`, as tokens.
const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];

fn is_cfg_test(tokens: &[Token]) -> bool {
    tokens.len() >= CFG_TEST.len()
        && tokens.iter().zip(CFG_TEST).all(|(t, want)| match t {
            Token::Ident(word) => word == want,
            Token::Punct(c) => want.len() == 1 && want.starts_with(*c),
            Token::PathSep => false,
        })
}

/// Where the item starting at `tokens[i]` ends: after its first `;` or its first block.
fn end_of_item(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(token) = tokens.get(i) {
        i += 1;
        match token {
            Token::Punct(';') if depth == 0 => return i,
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    i
}

/// The files each file refers to, with the paths that make each reference. Items under
/// `#[cfg(test)]` are not read: a test may exercise its file through the module above.
fn references(sources: &[Source]) -> BTreeMap<String, Refs> {
    let files: Files = sources
        .iter()
        .map(|s| (s.module.clone(), s.path.clone()))
        .collect();
    let mut all = BTreeMap::new();
    for source in sources {
        let tokens = tokens(&code_only(&source.text));
        // The names `use` binds in this file, to what they name (scopes are not told apart).
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut refs = Refs::new();
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < tokens.len() {
            let here: Vec<String> = source
                .module
                .iter()
                .cloned()
                .chain(inline.iter().map(|(name, _)| name.clone()))
                .collect();
            let mut note = |written: Vec<String>, aliases: &BTreeMap<String, Vec<String>>| {
                if let Some(target) = absolute(&here, &written, &files, aliases) {
                    if let Some(file) = file_of(&target, &files) {
                        if file != source.path {
                            refs.entry(file).or_default().insert(written.join("::"));
                        }
                    }
                }
            };
            if is_cfg_test(&tokens[i..]) {
                i = end_of_item(&tokens, i + CFG_TEST.len());
                continue;
            }
            match &tokens[i] {
                Token::Ident(word) if word == "mod" => {
                    if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) =
                        (tokens.get(i + 1), tokens.get(i + 2))
                    {
                        inline.push((name.clone(), depth));
                        depth += 1;
                        i += 3;
                        continue;
                    }
                    i += 1;
                }
                Token::Ident(word)
                    if word == "use" && !matches!(tokens.get(i + 1), Some(Token::Punct('<'))) =>
                {
                    let mut trees = Vec::new();
                    i = use_tree(&tokens, i + 1, &[], &mut trees);
                    for (written, bound) in trees {
                        if let Some(name) = bound {
                            if let Some(target) = absolute(&here, &written, &files, &aliases) {
                                aliases.insert(name, target);
                            }
                        }
                        note(written, &aliases);
                    }
                }
                Token::Ident(first) if tokens.get(i + 1) == Some(&Token::PathSep) => {
                    let mut written = vec![first.clone()];
                    let mut j = i + 1;
                    while tokens.get(j) == Some(&Token::PathSep) {
                        match tokens.get(j + 1) {
                            Some(Token::Ident(next)) => {
                                written.push(next.clone());
                                j += 2;
                            }
                            _ => break,
                        }
                    }
                    // `Vec::<u8>::new`'s `new`, or `pub(in crate::a)`: no reference.
                    let continues_a_path = i > 0 && tokens[i - 1] == Token::PathSep;
                    let visibility = i > 0 && tokens[i - 1] == Token::Ident("in".to_owned());
                    if !continues_a_path && !visibility {
                        note(written, &aliases);
                    }
                    i = j;
                }
                Token::Punct('{') => {
                    depth += 1;
                    i += 1;
                }
                Token::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, at)| *at == depth) {
                        inline.pop();
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        all.insert(source.path.clone(), refs);
    }
    all
}

fn show(paths: &BTreeSet<String>) -> String {
    paths.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// No two files refer to each other: a reader can read one before the other.
#[test]
fn no_two_files_in_src_refer_to_each_other() {
    let sources = library_sources();
    assert!(sources.len() > 100, "found only {} files", sources.len());
    let refs = references(&sources);
    let mut pairs = Vec::new();
    for (a, to) in &refs {
        for (b, a_uses) in to {
            if a < b {
                if let Some(b_uses) = refs.get(b).and_then(|r| r.get(a)) {
                    pairs.push(format!(
                        "{a} <-> {b}\n    {a} uses {}\n    {b} uses {}",
                        show(a_uses),
                        show(b_uses)
                    ));
                }
            }
        }
    }
    assert!(
        pairs.is_empty(),
        "{} pairs of files refer to each other:\n{}",
        pairs.len(),
        pairs.join("\n")
    );
}

/// The files `from` reaches through its references, directly or through others.
fn reachable(refs: &BTreeMap<String, Refs>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(file) = stack.pop() {
        for to in refs.get(&file).into_iter().flat_map(|r| r.keys()) {
            if seen.insert(to.clone()) {
                stack.push(to.clone());
            }
        }
    }
    seen
}

/// No circle of any length: the files can be read in an order where each refers only
/// to files read before it.
#[test]
fn no_circle_of_files_in_src() {
    let refs = references(&library_sources());
    let reach: BTreeMap<&String, BTreeSet<String>> =
        refs.keys().map(|f| (f, reachable(&refs, f))).collect();
    let mut placed = BTreeSet::new();
    let mut circles = Vec::new();
    for (file, from_it) in &reach {
        if placed.contains(*file) || !from_it.contains(*file) {
            continue;
        }
        let circle: Vec<&String> = from_it
            .iter()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(*file)))
            .collect();
        placed.extend(circle.iter().map(|f| (*f).clone()));
        circles.push(format!("{} files: {}", circle.len(), show_files(&circle)));
    }
    assert!(
        circles.is_empty(),
        "circles of files that refer to each other, directly or through others:\n{}",
        circles.join("\n")
    );
}

fn show_files(files: &[&String]) -> String {
    files
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ground floor of `storage`, below `bulk` and the table modules alike: the
/// connection, the entities (the tables' definitions and how a value is kept in their
/// columns), how a civil date and a request body are kept. Files, or folders ending `/`.
const STORAGE_GROUND: &[&str] = &[
    "src/storage/db.rs",
    "src/storage/days.rs",
    "src/storage/entities/",
    "src/storage/request_body.rs",
];

fn on_storage_ground(file: &str) -> bool {
    STORAGE_GROUND
        .iter()
        .any(|g| file == *g || (g.ends_with('/') && file.starts_with(g)))
}

/// `storage/bulk` sits below the table modules it serves: outside itself it refers in
/// `storage` only to the ground floor, which refers to nothing else in `storage`.
#[test]
fn storage_bulk_refers_to_nothing_above_it_in_storage() {
    let refs = references(&library_sources());
    let mut found = Vec::new();
    for (from, to) in &refs {
        let in_bulk = from.starts_with("src/storage/bulk/");
        let on_ground = on_storage_ground(from);
        if !in_bulk && !on_ground {
            continue;
        }
        for (file, uses) in to {
            let above = file.starts_with("src/storage/")
                && !on_storage_ground(file)
                && !(in_bulk && file.starts_with("src/storage/bulk/"));
            if above {
                found.push(format!("{from} -> {file}: {}", show(uses)));
            }
        }
    }
    assert!(
        found.is_empty(),
        "storage/bulk, or the ground floor below it, refers to storage above it:\n{}",
        found.join("\n")
    );
}

/// The reader itself, on a small crate written out here: it sees `use` trees, inline
/// paths, `super`, aliases and child modules, and not comments, strings or
/// `#[cfg(test)]` items.
#[test]
fn the_reader_finds_references_through_every_kind_of_path() {
    let source = |path: &str, module: &[&str], text: &str| Source {
        path: path.to_owned(),
        module: module.iter().map(|m| (*m).to_owned()).collect(),
        text: text.to_owned(),
    };
    let sources = [
        source("src/lib.rs", &[], "pub mod a; pub mod b;"),
        source(
            "src/a/mod.rs",
            &["a"],
            "mod x; use crate::{b::{self, c::Thing as T}, b::d};\n\
             // crate::e::Nothing\n\
             fn f() { let s = \"crate::e::Quoted\"; x::go(); b::c2::y(); }",
        ),
        source(
            "src/a/x.rs",
            &["a", "x"],
            "fn go() { super::super::e::f(); }",
        ),
        source("src/b/mod.rs", &["b"], "pub mod c; pub mod c2; pub mod d;"),
        source("src/b/c.rs", &["b", "c"], "pub struct Thing;"),
        source("src/b/c2.rs", &["b", "c2"], "pub fn y() {}"),
        source("src/b/d.rs", &["b", "d"], ""),
        source(
            "src/e.rs",
            &["e"],
            "pub fn f() {} #[cfg(test)] mod tests { use super::*; use super::super::b; }",
        ),
    ];
    let refs = references(&sources);
    let to = |from: &str| -> Vec<&str> { refs[from].keys().map(String::as_str).collect() };
    assert_eq!(
        to("src/a/mod.rs"),
        [
            "src/a/x.rs",
            "src/b/c.rs",
            "src/b/c2.rs",
            "src/b/d.rs",
            "src/b/mod.rs"
        ]
    );
    assert_eq!(to("src/a/x.rs"), ["src/e.rs"]);
    assert!(refs["src/e.rs"].is_empty(), "{:?}", refs["src/e.rs"]);
}
