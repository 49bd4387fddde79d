//! The bulk report: one row per attempt (a ticket tried on a key), in JSON
//! and CSV, each written atomically (temporary file, fsync, rename), so a
//! reader never sees half a report. No PIN ever appears here: a row only
//! says whether one was generated.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Report format version (the `version` member of the JSON document).
pub const VERSION: u32 = 1;

/// How an attempt, or a ticket that was never tried, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The key is enrolled and the binding committed.
    Bound,
    /// This attempt failed; `reason` says why. The ticket may have been
    /// tried again on another key (a later row).
    Failed,
    /// The ticket was never tried (the run ended first: no key came, or it
    /// was cancelled).
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Bound => "bound",
            Outcome::Failed => "failed",
            Outcome::NotRun => "not-run",
        }
    }
}

/// One row: a ticket on a key.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Manifest line of the ticket.
    pub line: usize,
    pub label: Option<String>,
    pub subject: String,
    pub jti: String,
    /// The slot that ran it (`reader:NAME` or `sim:N`).
    pub slot: Option<String>,
    /// The key's serial, when known.
    pub serial: Option<String>,
    pub aaguid: Option<String>,
    /// The ledger binding id (bound only).
    pub binding: Option<String>,
    /// The ledger run id.
    pub run: Option<String>,
    pub outcome: Outcome,
    /// Stable kebab-case reason code of a failure (as in metrics).
    pub reason: Option<String>,
    /// What went wrong, for a person (no secrets).
    pub message: Option<String>,
    /// Attempt number of this ticket (1 for the first key it met).
    pub attempt: u32,
    /// When the attempt started (RFC 3339, UTC).
    pub started: Option<String>,
    pub duration_ms: Option<u64>,
    /// A PIN was generated and sealed into the PIN file.
    pub pin_generated: bool,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub tickets: usize,
    /// Tickets whose key is bound.
    pub bound: usize,
    /// Tickets that ended without a binding (failed on every key tried, or
    /// refused for a ticket problem).
    pub failed: usize,
    /// Tickets never tried.
    pub not_run: usize,
    /// Attempts that failed (a key that failed counts here even when its
    /// ticket later succeeded on another key).
    pub failed_attempts: usize,
}

impl Summary {
    /// Whether every ticket was bound on its first key.
    pub fn all_ok(&self) -> bool {
        self.bound == self.tickets && self.failed_attempts == 0
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub manifest: String,
    pub started: String,
    pub finished: String,
    pub duration_ms: u64,
    pub parallel: usize,
    /// The age-encrypted PIN file, when PINs were generated.
    pub pin_file: Option<String>,
    pub summary: Summary,
    pub rows: Vec<Row>,
}

/// Where the two files go: `FILE.json` and `FILE.csv`. A `.json` or `.csv`
/// extension on `FILE` is replaced, so `--report out.json`, `--report
/// out.csv` and `--report out` all write `out.json` and `out.csv`.
pub fn paths(file: &Path) -> (PathBuf, PathBuf) {
    let base = match file.extension().and_then(|e| e.to_str()) {
        Some("json" | "csv") => file.with_extension(""),
        _ => file.to_path_buf(),
    };
    let with = |ext: &str| {
        let mut s = base.clone().into_os_string();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    };
    (with("json"), with("csv"))
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "line",
    "label",
    "subject",
    "jti",
    "slot",
    "serial",
    "aaguid",
    "binding",
    "run",
    "outcome",
    "reason",
    "message",
    "attempt",
    "started",
    "duration_ms",
    "pin_generated",
];

fn csv_bytes(rows: &[Row]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    for r in rows {
        w.write_record([
            r.line.to_string(),
            opt(&r.label),
            r.subject.clone(),
            r.jti.clone(),
            opt(&r.slot),
            opt(&r.serial),
            opt(&r.aaguid),
            opt(&r.binding),
            opt(&r.run),
            r.outcome.as_str().to_string(),
            opt(&r.reason),
            opt(&r.message),
            r.attempt.to_string(),
            opt(&r.started),
            r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            r.pin_generated.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Write both files atomically.
pub fn write(report: &Report, file: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let (json_path, csv_path) = paths(file);
    let mut json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    json.push(b'\n');
    write_atomic(&json_path, &json, 0o644)?;
    let csv = csv_bytes(&report.rows).map_err(std::io::Error::other)?;
    write_atomic(&csv_path, &csv, 0o644)?;
    Ok((json_path, csv_path))
}

/// Write `data` to `path` through a temporary file in the same directory,
/// fsynced, then renamed over `path` (and the directory fsynced), so that
/// `path` holds either the old or the new content, never part of one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    let mut r = [0u8; 6];
    crate::random::fill(&mut r);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        hex::encode(r)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: Outcome) -> Row {
        Row {
            line: 3,
            label: Some("desk, 4".into()),
            subject: "ann@example.org".into(),
            jti: "jti-0000000000000001".into(),
            slot: Some("sim:0".into()),
            serial: Some("12345678".into()),
            aaguid: None,
            binding: None,
            run: Some("r1".into()),
            outcome,
            reason: Some("attestation-untrusted".into()),
            message: Some("the \"attestation\" does not chain".into()),
            attempt: 1,
            started: Some("2026-01-01T00:00:00Z".into()),
            duration_ms: Some(1500),
            pin_generated: false,
        }
    }

    #[test]
    fn paths_replace_the_extension() {
        let p = |s: &str| {
            let (j, c) = paths(Path::new(s));
            (j.display().to_string(), c.display().to_string())
        };
        assert_eq!(p("out.json"), ("out.json".into(), "out.csv".into()));
        assert_eq!(p("d/out.csv"), ("d/out.json".into(), "d/out.csv".into()));
        assert_eq!(p("out"), ("out.json".into(), "out.csv".into()));
        assert_eq!(
            p("run.2026"),
            ("run.2026.json".into(), "run.2026.csv".into())
        );
    }

    #[test]
    fn writes_both_formats_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            version: VERSION,
            manifest: "m.jsonl".into(),
            started: "a".into(),
            finished: "b".into(),
            duration_ms: 2,
            parallel: 2,
            pin_file: None,
            summary: Summary {
                tickets: 1,
                failed: 1,
                failed_attempts: 1,
                ..Summary::default()
            },
            rows: vec![row(Outcome::Failed)],
        };
        // An old report is replaced whole.
        std::fs::write(dir.path().join("r.json"), "old").unwrap();
        let (j, c) = write(&report, &dir.path().join("r.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(j).unwrap()).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["rows"][0]["outcome"], "failed");
        assert_eq!(doc["summary"]["failed_attempts"], 1);
        let mut rd = csv::Reader::from_path(c).unwrap();
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            CSV_COLUMNS
        );
        let rec = rd.records().next().unwrap().unwrap();
        assert_eq!(&rec[1], "desk, 4");
        assert_eq!(&rec[9], "failed");
        assert_eq!(&rec[11], "the \"attestation\" does not chain");
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn unwritable_destination_is_named_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing-dir").join("r.json");
        let e = write_atomic(&target, b"x", 0o644).unwrap_err();
        assert!(e.to_string().contains("missing-dir/r.json"), "{e}");
        assert!(!std::path::Path::new(&target).exists());
    }
}
