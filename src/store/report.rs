//! Read side for metrics and `keyward report`: what the ledger says happened
//! in a time window, counted in SQL from `runs`, `bindings`, `exceptions`.
//! Facts only; rates, quantiles and thresholds are computed in
//! [`crate::metrics`].

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use super::{Ledger, StoreError};

/// How the runs of one kind ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Cancelled by the operator or by shutdown.
    pub aborted: u64,
    /// Started and never ended: still running, or interrupted by a crash.
    pub unfinished: u64,
}

/// Failed runs of one kind with one reason code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    pub kind: String,
    pub reason: String,
    pub count: u64,
}

/// Failures of the key's attestation or of the attestation policy for one
/// AAGUID (`None` when the run never learnt it): reasons `attestation-*`,
/// `policy-aaguid`, `policy-model`, `policy-enterprise-attestation`,
/// `policy-attestation`, `policy-piv` and `serial-mismatch` (not
/// `policy-pin` or `policy-unknown-profile`, which say nothing of the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationFailure {
    pub aaguid: Option<String>,
    pub reason: String,
    pub count: u64,
}

/// What happened between `since` and `until` (Unix seconds, `since`
/// inclusive, `until` exclusive).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerStats {
    pub since: i64,
    pub until: i64,
    /// Runs by kind (`enroll`, `replace`, `revoke`, `return`, `unblock`),
    /// counted by their start time.
    pub runs: BTreeMap<String, RunCounts>,
    /// Failed runs by kind and reason, most frequent first.
    pub failures: Vec<FailureCount>,
    pub attestation_failures: Vec<AttestationFailure>,
    /// Seconds from start to end of each completed enroll or replace run,
    /// ascending: the time to issue a key.
    pub issue_seconds: Vec<i64>,
    /// Bindings created in the window (enrollments and replacements).
    pub bindings_created: u64,
    /// Bindings that became replaced / revoked / returned / lost in the window.
    pub replacements: u64,
    pub revocations: u64,
    pub returns: u64,
    pub lost: u64,
    /// Completed unblock and return runs: each resets a PIN or the whole key.
    pub resets: u64,
    /// Policy exceptions (waivers) granted in the window.
    pub exceptions: u64,
    /// Active bindings now (not windowed).
    pub active_bindings: u64,
}

impl Ledger {
    /// Count what happened in `[since, until)`.
    pub fn stats(&self, since: i64, until: i64) -> Result<LedgerStats, StoreError> {
        let mut s = LedgerStats {
            since,
            until,
            ..LedgerStats::default()
        };
        self.count_runs(&mut s)?;
        s.failures = self.failure_counts(since, until)?;
        s.attestation_failures = self.attestation_failures(since, until)?;
        s.issue_seconds = self.issue_seconds(since, until)?;
        let count = |sql: &str| -> Result<u64, StoreError> {
            let n: i64 = self
                .conn()
                .query_row(sql, params![since, until], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        s.bindings_created =
            count("SELECT count(*) FROM bindings WHERE created_at >= ?1 AND created_at < ?2")?;
        s.replacements =
            count("SELECT count(*) FROM bindings WHERE replaced_at >= ?1 AND replaced_at < ?2")?;
        s.revocations =
            count("SELECT count(*) FROM bindings WHERE revoked_at >= ?1 AND revoked_at < ?2")?;
        s.returns =
            count("SELECT count(*) FROM bindings WHERE returned_at >= ?1 AND returned_at < ?2")?;
        s.lost = count("SELECT count(*) FROM bindings WHERE lost_at >= ?1 AND lost_at < ?2")?;
        s.resets = count(
            "SELECT count(*) FROM runs WHERE kind IN ('unblock', 'return') AND outcome = 'completed'
             AND started_at >= ?1 AND started_at < ?2",
        )?;
        s.exceptions =
            count("SELECT count(*) FROM exceptions WHERE created_at >= ?1 AND created_at < ?2")?;
        s.active_bindings = self.conn().query_row(
            "SELECT count(*) FROM bindings WHERE state = 'active'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n.max(0) as u64),
        )?;
        Ok(s)
    }

    fn count_runs(&self, s: &mut LedgerStats) -> Result<(), StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT kind, coalesce(outcome, ''), count(*) FROM runs
             WHERE started_at >= ?1 AND started_at < ?2 GROUP BY kind, outcome",
        )?;
        let rows = stmt.query_map(params![s.since, s.until], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (kind, outcome, n) = row?;
            let n = n.max(0) as u64;
            let c = s.runs.entry(kind).or_default();
            c.started += n;
            match outcome.as_str() {
                "completed" => c.completed += n,
                "failed" => c.failed += n,
                "aborted" => c.aborted += n,
                "" => c.unfinished += n,
                o => return Err(StoreError::Corrupt(format!("run outcome {o:?}"))),
            }
        }
        Ok(())
    }

    fn failure_counts(&self, since: i64, until: i64) -> Result<Vec<FailureCount>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT kind, coalesce(reason, 'unknown'), count(*) AS n FROM runs
             WHERE outcome = 'failed' AND started_at >= ?1 AND started_at < ?2
             GROUP BY 1, 2 ORDER BY n DESC, 1, 2",
        )?;
        let rows = stmt.query_map(params![since, until], |r| {
            Ok(FailureCount {
                kind: r.get(0)?,
                reason: r.get(1)?,
                count: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn attestation_failures(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<AttestationFailure>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT aaguid, reason, count(*) AS n FROM runs
             WHERE outcome = 'failed' AND (reason LIKE 'attestation-%' OR reason IN (
                   'policy-aaguid', 'policy-model', 'policy-enterprise-attestation',
                   'policy-attestation', 'policy-piv', 'serial-mismatch'))
               AND started_at >= ?1 AND started_at < ?2
             GROUP BY 1, 2 ORDER BY n DESC, 1, 2",
        )?;
        let rows = stmt.query_map(params![since, until], |r| {
            Ok(AttestationFailure {
                aaguid: r.get(0)?,
                reason: r.get(1)?,
                count: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn issue_seconds(&self, since: i64, until: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn().prepare(
            "SELECT max(finished_at - started_at, 0) AS d FROM runs
             WHERE kind IN ('enroll', 'replace') AND outcome = 'completed'
               AND started_at >= ?1 AND started_at < ?2 ORDER BY d",
        )?;
        let rows = stmt.query_map(params![since, until], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunEnd, RunKind, RunOutcome, RunStart, StationKey};

    fn run(l: &mut Ledger, kind: RunKind, t: i64, end: Option<(RunEnd, i64)>) {
        let start = RunStart {
            actor: "test",
            ..RunStart::default()
        };
        let id = l.run_started(kind, &start, t).unwrap();
        if let Some((end, at)) = end {
            l.run_finished(&id, &end, "test", at).unwrap();
        }
    }

    #[test]
    fn runs_are_counted_by_kind_outcome_and_reason_within_the_window() {
        let d = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&d.path().join("l.db"), StationKey::generate()).unwrap();
        run(
            &mut l,
            RunKind::Enroll,
            100,
            Some((RunEnd::completed(None), 130)),
        );
        run(
            &mut l,
            RunKind::Enroll,
            110,
            Some((RunEnd::completed(None), 120)),
        );
        let mut bad = RunEnd::failed("attestation-untrusted", "chain does not reach a root");
        bad.aaguid = Some("aa".into());
        run(&mut l, RunKind::Enroll, 120, Some((bad, 121)));
        run(
            &mut l,
            RunKind::Enroll,
            125,
            Some((RunEnd::failed("device-removed", "gone"), 126)),
        );
        run(
            &mut l,
            RunKind::Replace,
            125,
            Some((RunEnd::failed("policy-pin", "too short"), 125)),
        );
        let mut aborted = RunEnd::failed("cancelled", "shutdown");
        aborted.outcome = RunOutcome::Aborted;
        run(&mut l, RunKind::Enroll, 126, Some((aborted, 127)));
        run(&mut l, RunKind::Enroll, 127, None);
        run(
            &mut l,
            RunKind::Unblock,
            128,
            Some((RunEnd::completed(None), 129)),
        );
        run(
            &mut l,
            RunKind::Enroll,
            500,
            Some((RunEnd::completed(None), 501)),
        );

        let s = l.stats(100, 200).unwrap();
        let e = &s.runs["enroll"];
        assert_eq!(
            (e.started, e.completed, e.failed, e.aborted, e.unfinished),
            (6, 2, 2, 1, 1)
        );
        assert_eq!(s.issue_seconds, vec![10, 30]);
        assert_eq!(s.resets, 1);
        assert_eq!(s.failures.len(), 3);
        assert_eq!(s.runs["replace"].failed, 1);
        assert_eq!(
            s.attestation_failures,
            vec![AttestationFailure {
                aaguid: Some("aa".into()),
                reason: "attestation-untrusted".into(),
                count: 1
            }]
        );
        let all = l.stats(0, i64::MAX).unwrap();
        assert_eq!(all.runs["enroll"].started, 7);
        assert!(l.stats(600, 700).unwrap().runs.is_empty());
    }
}
