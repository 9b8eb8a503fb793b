//! Stamps build facts into the binary as compile-time environment variables, so that
//! `qnetd --version` / `corosync-qnetd -v` can say exactly which build is running
//! (read them with `env!("QNETD_GIT_REV")` etc.):
//!
//! * `QNETD_GIT_REV`: 12-hex-digit commit of the source tree, `unknown` when built
//!   from a tarball without `.git` or without git installed. A packager can set
//!   `QNETD_GIT_REV` in the build environment to override it.
//! * `QNETD_TARGET`: the target triple, e.g. `armv7-unknown-linux-musleabihf`.
//! * `QNETD_PROFILE`: the cargo profile's base (`release` or `debug`).
//! * `QNETD_BUILD_INFO`: `<version> (<rev>, <target>)`, ready to print.
//!
//! Only std is used: a build script dependency would be compiled for every build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rerun-if-env-changed=QNETD_GIT_REV");
    let rev = match std::env::var("QNETD_GIT_REV") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => git_rev().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=QNETD_GIT_REV={rev}");
    println!("cargo:rustc-env=QNETD_TARGET={target}");
    println!("cargo:rustc-env=QNETD_PROFILE={profile}");
    println!("cargo:rustc-env=QNETD_BUILD_INFO={version} ({rev}, {target})");
}

/// The commit of HEAD, and the files whose change means HEAD moved (so the stamp
/// follows commits without re-running this script on every source edit).
fn git_rev() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // Only trust a repository whose top level is this crate: a tarball unpacked
    // inside some other repository must not pick up that repository's revision.
    let top = git(&manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let mut watch = Vec::new();
    if let Some(head) = git(&manifest_dir, &["rev-parse", "--git-path", "HEAD"]) {
        watch.push(manifest_dir.join(head));
    }
    // The branch ref moves on commit; packed-refs on gc. (Worktrees keep refs in
    // the common dir.)
    if let Some(common) = git(&manifest_dir, &["rev-parse", "--git-common-dir"]) {
        let common = manifest_dir.join(common);
        if let Some(r) = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(common.join(r));
        }
        watch.push(common.join("packed-refs"));
    }
    // A watched path that does not exist would make cargo re-run this every build.
    for p in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"])
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
