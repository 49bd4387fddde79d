//! The vectors in tests/vectors are the files their README names: every
//! file has a row with its sha256, and every row has its file. Ignored
//! unless asked for: each file is byte-identical to the copy kept outside the
//! repository in `../shared/vectors` (an independent check of provenance).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every vector file, relative to tests/vectors (README.md and extract.py
/// are not vectors).
fn files() -> Vec<String> {
    fn walk(d: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                if rel != "README.md" && rel != "extract.py" {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir(), &dir(), &mut out);
    out.sort();
    out
}

/// file → sha256 (hex) from the README's table.
fn readme_digests() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir().join("README.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            // | file | repository | commit | path | sha256 | licence |
            (cells.len() == 8 && cells[5].len() == 64).then(|| (cells[1].into(), cells[5].into()))
        })
        .collect()
}

#[test]
fn every_vector_has_its_provenance_row_and_digest() {
    let rows = readme_digests();
    let files = files();
    assert!(files.len() >= 40, "vectors missing: {files:?}");
    assert_eq!(
        files,
        rows.keys().cloned().collect::<Vec<_>>(),
        "tests/vectors and its README's table list different files"
    );
    for f in &files {
        let got = hex::encode(Sha256::digest(std::fs::read(dir().join(f)).unwrap()));
        assert_eq!(&got, &rows[f], "{f}: sha256 differs from README.md");
    }
}

#[test]
#[ignore = "needs ../shared/vectors, the copy kept outside the repository (scripts/test runs it)"]
fn every_vector_is_byte_identical_to_the_shared_copy() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors");
    assert!(
        shared.is_dir(),
        "this test compares with {}, which is absent: run it where the shared vectors are",
        shared.display()
    );
    for f in files() {
        let ours = std::fs::read(dir().join(&f)).unwrap();
        let theirs = std::fs::read(shared.join(&f))
            .unwrap_or_else(|e| panic!("{f}: not in {}: {e}", shared.display()));
        assert!(ours == theirs, "{f} differs from the shared copy");
    }
}
