//! The README as a reader meets it: its shell examples run as printed, in order, against a
//! real `erpsync serve` (the convention is the comment at the README's top), and no link
//! of it or of docs/ leaves the repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::cli::wait_ready;

const README: &str = include_str!("../../README.md");

/// The address the README's examples name; the test's server answers elsewhere.
const README_ADDR: &str = "127.0.0.1:50051";

/// How long all the examples may take together.
const EXAMPLES_TIMEOUT: Duration = Duration::from_secs(90);

/// Marks the line where a block's output starts in the session's output.
const BLOCK_MARK: &str = "@@readme-block";

/// A shell example of the README.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence (1-based).
    line: usize,
    /// What runs.
    code: String,
    /// Why it does not run (`readme-test: skip: REASON`).
    skip: Option<String>,
    /// The tools it needs (`readme-test: needs TOOL…`).
    needs: Vec<String>,
}

/// The shell blocks of `markdown` with the `readme-test:` marks just above them.
fn shell_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut marks: Vec<String> = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if let Some(mark) = line.trim().strip_prefix("<!--") {
            if let Some(mark) = mark.trim().strip_prefix("readme-test:") {
                marks.push(mark.trim_end_matches("-->").trim().to_owned());
            }
            // Other one-line comments (another test's marker) may stand between.
            continue;
        }
        let Some(lang) = line.strip_prefix("```") else {
            marks.clear();
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let code = match lang.trim() {
            "sh" | "bash" => body.join("\n"),
            "console" => body
                .iter()
                .filter_map(|l| l.strip_prefix("$ "))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => {
                marks.clear();
                continue;
            }
        };
        let mut block = Block {
            line: i + 1,
            code,
            skip: None,
            needs: Vec::new(),
        };
        for mark in marks.drain(..) {
            if let Some(reason) = mark.strip_prefix("skip:") {
                block.skip = Some(reason.trim().to_owned());
            } else if let Some(tools) = mark.strip_prefix("needs") {
                block.needs = tools.split_whitespace().map(str::to_owned).collect();
            } else {
                panic!("README line {}: unknown readme-test mark {mark:?}", i + 1);
            }
        }
        blocks.push(block);
    }
    blocks
}

/// Whether `tool` is a program on PATH.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Writes an executable shell script.
fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A folder of programs the examples find first on PATH: `erpsync` (the built binary),
/// `cargo` (`cargo run [-q] -- ARGS` runs it; anything else is refused) and, where the
/// machine has none, a `grpcurl` that says it was skipped.
fn programs(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_erpsync"), bin.join("erpsync")).unwrap();
    script(
        &bin.join("cargo"),
        "#!/bin/sh\n\
         # The README test's cargo: `cargo run [OPTIONS] -- ARGS` is the built erpsync.\n\
         [ \"$1\" = run ] || { echo \"README test: only 'cargo run -- ...' runs, not 'cargo $*'\" >&2; exit 2; }\n\
         while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
         [ $# -gt 0 ] && shift\n\
         exec erpsync \"$@\"\n",
    );
    if let Ok(grpcurl) = std::env::var("GRPCURL") {
        std::os::unix::fs::symlink(grpcurl, bin.join("grpcurl")).unwrap();
    } else if !on_path("grpcurl") {
        eprintln!("grpcurl is not installed: the README's grpcurl lines do nothing here");
        script(
            &bin.join("grpcurl"),
            "#!/bin/sh\necho 'grpcurl is not installed: skipped by the README test' >&2\n",
        );
    }
    bin
}

/// `erpsync serve` in `dir` with its defaults (./data/erpsync.db), on a free port, as a
/// reader's first terminal has it; its port.
fn serve(dir: &Path, env: &[(String, String)]) -> (std::process::Child, u16) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_erpsync"));
    command
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    clean_env(&mut command);
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = command.spawn().unwrap();
    let (port, _) = wait_ready(&mut child);
    (child, port)
}

/// Leaves out the test environment's erpsync settings: the examples run with the
/// defaults a reader has.
fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("ERPSYNC_") || key == "DATABASE_URL" || key == "NO_COLOR" {
            command.env_remove(key.as_ref());
        }
    }
}

/// The session's output from the mark of block `index` to the next mark.
fn output_of(output: &str, index: usize) -> &str {
    let mark = format!("{BLOCK_MARK} {index}@@\n");
    let from = output.rfind(&mark).map_or(0, |at| at + mark.len());
    let rest = &output[from..];
    rest.find(BLOCK_MARK).map_or(rest, |end| &rest[..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_shell_examples_run_as_printed_in_order_against_a_real_server() {
    let blocks = shell_blocks(README);
    assert!(blocks.len() >= 10, "the README's examples: {blocks:#?}");
    let dir = tempfile::tempdir().unwrap();
    // The examples run in a clone: its scripts/ and the data they read in tests/.
    for folder in ["scripts", "tests"] {
        std::os::unix::fs::symlink(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(folder),
            dir.path().join(folder),
        )
        .unwrap();
    }
    let bin = programs(dir.path());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (mut server, port) = serve(dir.path(), &[("PATH".into(), path.clone())]);
    let addr = format!("127.0.0.1:{port}");

    // One bash session: `set -e` stops at the first command that fails, as a reader would;
    // each block's output follows its mark.
    let mut session = String::from("set -e\nexec 2>&1\n");
    let mut ran = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        if let Some(reason) = &block.skip {
            eprintln!("README line {}: not run ({reason})", block.line);
            continue;
        }
        let missing: Vec<&String> = block.needs.iter().filter(|t| !on_path(t)).collect();
        if !missing.is_empty() {
            eprintln!(
                "README line {}: skipped, {missing:?} not installed",
                block.line
            );
            continue;
        }
        session.push_str(&format!("printf '\\n{BLOCK_MARK} %s@@\\n' {index}\n"));
        session.push_str(&block.code.replace(README_ADDR, &addr));
        session.push('\n');
        ran.push(index);
    }
    session.push_str(&format!("printf '\\n{BLOCK_MARK} end@@\\n'\n"));

    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(&session)
        .current_dir(dir.path())
        .stdin(Stdio::null());
    clean_env(&mut bash);
    bash.env("PATH", &path)
        .env("ERPSYNC_SERVER", format!("http://{addr}"));
    let started = std::time::Instant::now();
    let (success, output) = tokio::task::spawn_blocking(move || {
        crate::helpers::run_script(bash, "the README's examples", EXAMPLES_TIMEOUT)
    })
    .await
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();

    if !success {
        // The block that failed is the last one whose mark was printed.
        let failed = ran
            .iter()
            .rev()
            .find(|&&i| output.contains(&format!("{BLOCK_MARK} {i}@@\n")))
            .copied();
        match failed {
            Some(i) => panic!(
                "the README's example at line {} failed.\n--- block\n{}\n--- its output\n{}",
                blocks[i].line,
                blocks[i].code,
                output_of(&output, i)
            ),
            None => panic!("the README's examples did not start:\n{output}"),
        }
    }
    assert!(
        output.contains(&format!("{BLOCK_MARK} end@@")),
        "the session ended early:\n{output}"
    );
    // What the examples say they show.
    assert!(
        output.contains("reconciliation:    as of the last finished run"),
        "the overview after the first run shows the reconciliation table:\n{output}"
    );
    assert!(
        output.contains("postgres://leitor:***@erp-db/erp"),
        "show-view masks the password:\n{output}"
    );
    eprintln!(
        "{} README examples ran in {:?}",
        ran.len(),
        started.elapsed()
    );
}

#[test]
fn readme_blocks_are_read_with_their_marks() {
    let text = "intro\n\
        <!-- readme-test: skip: starts a server -->\n\
        ```sh\ncargo run -- serve\n```\n\
        <!-- readme-test: needs jq protoc -->\n\
        <!-- another-marker: kept apart -->\n\
        ```bash\necho a | jq .\necho b\n```\n\
        ```rust\nfn main() {}\n```\n\
        ```console\n$ erpsync overview\nhealth: HEALTHY\n```\n\
        <!-- readme-test: skip: too far above -->\n\
        text between\n\
        ```sh\necho runs\n```\n";
    let blocks = shell_blocks(text);
    assert_eq!(blocks.len(), 4, "{blocks:#?}");
    assert_eq!(blocks[0].skip.as_deref(), Some("starts a server"));
    assert_eq!(
        (blocks[1].needs.clone(), blocks[1].skip.clone()),
        (vec!["jq".into(), "protoc".into()], None)
    );
    assert_eq!(blocks[1].code, "echo a | jq .\necho b");
    assert_eq!(
        blocks[2].code, "erpsync overview",
        "a console block's commands"
    );
    assert_eq!(
        (blocks[3].code.as_str(), blocks[3].skip.as_deref()),
        ("echo runs", None)
    );
    assert_eq!(blocks[3].line, 21);
}

/// Every link of README.md and docs/*.md: (the file, the target).
fn links() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            if let Some(end) = rest.find(')') {
                out.push((file.clone(), rest[..end].to_owned()));
            }
        }
    }
    out
}

#[test]
fn readme_and_docs_link_only_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let links = links();
    assert!(links.len() > 10, "{links:?}");
    for (file, target) in links {
        if let Some(rest) = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))
        {
            // Only the reader's own server.
            assert!(
                rest.starts_with("127.0.0.1") || rest.starts_with("localhost"),
                "{}: {target} leaves the repository",
                file.display()
            );
            continue;
        }
        let path = target.split('#').next().unwrap_or_default();
        if path.is_empty() {
            continue; // an anchor of the same page
        }
        let resolved = file
            .parent()
            .unwrap()
            .join(path)
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {target}: {e}", file.display()));
        assert!(
            resolved.starts_with(&root),
            "{}: {target} leaves the repository",
            file.display()
        );
    }
    for name in [
        "README.md",
        "docs/host-guide.md",
        "docs/ui.md",
        "docs/deploy.md",
    ] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        assert!(
            !text.contains("DESIGN §") && !text.contains("DESIGN.md"),
            "{name} cites a design document outside the repository (docs/design.md is in it)"
        );
    }
}
