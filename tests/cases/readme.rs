//! The README's tour, run: every `$ command` in its `sh` blocks runs, in
//! order, in one shell against a real daemon, and what it prints (stdout
//! and stderr) must match the lines the README shows under it. Ids, times
//! and ages are masked on both sides; `…` stands for anything within a line,
//! and a line of `…` alone for any lines. A command shown without output
//! must exit 0.

use std::path::Path;
use std::process::Command;

use regex::Regex;

use crate::support::{jobq_bin, run_bounded, TestDaemon};

/// One `$ command` of the tour and the lines the README shows under it.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The steps of every `sh` block of README.md's "A tour" section.
fn tour() -> Vec<Step> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let start = readme.find("\n## A tour").expect("README has a tour");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1)];
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                shown: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.shown.push(line.to_owned());
        }
    }
    assert!(steps.len() > 20, "the tour has {} commands", steps.len());
    steps
}

/// Masks what differs from run to run, and collapses runs of spaces (a
/// table's widths follow its contents).
fn mask(line: &str) -> String {
    let masks = [
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<id>",
        ),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>"),
        (r"\b\d+[smhd] ago\b", "<age> ago"),
        (r"\bin \d+[smhd]\b", "in <age>"),
    ];
    let mut line = line.to_owned();
    for (pattern, with) in masks {
        line = Regex::new(pattern)
            .unwrap()
            .replace_all(&line, with)
            .into_owned();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when `printed` matches `shown` (both masked): `…` within a line
/// matches anything, a line of `…` any number of lines.
fn matches(shown: &[String], printed: &[String]) -> bool {
    match shown.split_first() {
        None => printed.is_empty(),
        Some((first, rest)) if first == "…" => {
            (0..=printed.len()).any(|skip| matches(rest, &printed[skip..]))
        }
        Some((first, rest)) => {
            let pattern = format!("^{}$", regex::escape(first).replace('…', ".*"));
            printed.split_first().is_some_and(|(line, more)| {
                Regex::new(&pattern).unwrap().is_match(line) && matches(rest, more)
            })
        }
    }
}

/// The scripts and files the tour's commands name, in `dir`.
fn fixtures(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (name, body) in [
        ("report.sh", "#!/bin/sh\necho \"report for $REPORT\"\n"),
        ("cleanup.sh", "#!/bin/sh\necho cleaned\n"),
        ("monthly.sh", "#!/bin/sh\necho monthly\n"),
        ("flaky.sh", "#!/bin/sh\necho flaky\n"),
        ("nightly.sh", "#!/bin/sh\necho nightly\n"),
        ("backup.sh", "#!/bin/sh\necho backed up\n"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        dir.join("jobs.jsonl"),
        "{\"shell\": \"echo one\"}\n{\"command\": [\"echo\", \"two\"], \"queue\": \"batch\"}\n",
    )
    .unwrap();
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    let tar = Command::new("tar")
        .args(["cf", "files.tar", "hello.txt"])
        .current_dir(dir)
        .status()
        .expect("tar");
    assert!(tar.success());
}

#[test]
fn the_readme_tour_runs_and_prints_what_it_shows() {
    let d = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let steps = tour();
    let address = d.addr().to_string();
    let mut script = String::from("set +e\n");
    for (i, step) in steps.iter().enumerate() {
        let command = step.command.replace("localhost:7711", &address);
        // The group's braces on lines of their own: a command may end in a
        // `# comment`.
        script.push_str(&format!(
            "printf '\\n@@step {i}\\n'\n{{ {command}\n}} 2>&1\nprintf '\\n@@rc {i} %d\\n' $?\n"
        ));
    }
    let bin_dir = Path::new(jobq_bin()).parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("JOBQ_SERVER", d.url())
        .env_remove("JOBQ_TOKEN")
        .env_remove("JOBQ_TOKEN_FILE");
    let out = run_bounded(bash, "the README tour");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();

    let mut failures = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let begin = format!("\n@@step {i}\n");
        let Some(at) = text.find(&begin) else {
            failures.push(format!("$ {}: never ran", step.command));
            continue;
        };
        let body = &text[at + begin.len()..];
        let end = body.find(&format!("\n@@rc {i} ")).unwrap_or(body.len());
        let rc: i32 = body[end..]
            .lines()
            .nth(1)
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        let printed: Vec<String> = body[..end].lines().map(mask).collect();
        let shown: Vec<String> = step.shown.iter().map(|l| mask(l)).collect();
        let ok = if shown.is_empty() {
            rc == 0
        } else {
            matches(&shown, &printed)
        };
        if !ok {
            failures.push(format!(
                "$ {}\n  exit {rc}\n  README shows:\n    {}\n  printed:\n    {}",
                step.command,
                step.shown.join("\n    "),
                body[..end].lines().collect::<Vec<_>>().join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} tour commands differ from the README:\n\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_masks_and_wildcards_match_what_they_should() {
    let shown: Vec<String> = ["a …", "…", "z"].map(String::from).into();
    let printed: Vec<String> = ["a b c", "x", "y", "z"].map(String::from).into();
    assert!(matches(&shown, &printed));
    assert!(!matches(&shown, &printed[..3]));
    assert_eq!(
        mask("3  failed  default  ended 12s ago  0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"),
        "3 failed default ended <age> ago <id>"
    );
}
