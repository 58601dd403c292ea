//! Build script: tells the binary the git commit it is built from, for
//! `jobq --version` and the `jobq_build_info` metric. `JOBQ_GIT_COMMIT` in
//! the environment wins (a packager building from a tarball); without git
//! or a repository, the version is the crate's alone.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=JOBQ_GIT_COMMIT");
    // A new commit moves HEAD or the branch it names.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let version = env!("CARGO_PKG_VERSION");
    let commit = std::env::var("JOBQ_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit);
    match commit {
        Some(commit) => {
            println!("cargo:rustc-env=JOBQ_GIT_COMMIT={commit}");
            println!("cargo:rustc-env=JOBQ_VERSION={version} (commit {commit})");
        }
        None => println!("cargo:rustc-env=JOBQ_VERSION={version}"),
    }
}

/// `git rev-parse --short=12 HEAD`, if git and a repository are there.
fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
