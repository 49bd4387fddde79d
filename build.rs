//! Build script: the source commit for `keyward --version`.
//!
//! `KEYWARD_COMMIT` from the environment wins (a build from a tarball or a
//! packager's pipeline sets it); else `git rev-parse` in a checkout; else
//! "unknown". Re-runs when HEAD or the checked-out branch moves.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=KEYWARD_COMMIT");
    let commit = match std::env::var("KEYWARD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
            }
            if let (Some(common), Some(head)) = (
                git(&["rev-parse", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                println!("cargo:rerun-if-changed={common}/{head}");
                println!("cargo:rerun-if-changed={common}/packed-refs");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=KEYWARD_COMMIT={commit}");
}
