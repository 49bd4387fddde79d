//! `keyward registry verify`: check the registry's whole log from scratch.
//!
//! Every leaf's digest is recomputed from the stored event (in log order),
//! the tree is rebuilt from those digests, and each signed tree head stored
//! must be the root of its prefix (and, with the registry key's public half,
//! signed by it); a tree head a station kept must be too. An event altered,
//! removed or out of place fails with the index and the event; a reorder
//! that kept every digest next to its event fails at the first signed head
//! after it, naming the span of leaves since the head before. Memory: the
//! tree (about 100 bytes a leaf) and one page of rows.

use std::time::Instant;

use serde::Serialize;

use super::log::{self, EventFields, LogTree};
use super::{Registry, RegistryError, StoredHead};

/// Leaves read per query.
const PAGE: i64 = 50_000;

/// A tree head to hold the log to: its size and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedHead {
    pub size: u64,
    pub root: log::Hash,
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Leaves checked (= events in the log).
    pub events: u64,
    /// The rebuilt tree's root.
    pub root: String,
    /// Signed tree heads stored, all matched.
    pub heads: usize,
    pub latest_head: Option<StoredHead>,
    /// Whether the heads' signatures were checked (`--key-pub`).
    pub signatures_checked: bool,
    /// The station's head size, when one was given and matched.
    pub station_head: Option<u64>,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Why the log does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Db(#[from] RegistryError),
    #[error(
        "log leaf {index} is missing (the next one stored is {next}): an event was removed from the log; restore the registry database from a backup and report it"
    )]
    Gap { index: i64, next: i64 },
    #[error(
        "log leaf {index}: event {event_id} of station {station} is missing from the events table: it was removed; restore the registry database from a backup and report it"
    )]
    Missing {
        index: i64,
        station: String,
        event_id: String,
    },
    #[error(
        "log leaf {index}: event {event_id} of station {station} was altered (its stored content no longer hashes to its leaf); restore the registry database from a backup and report it"
    )]
    Altered {
        index: i64,
        station: String,
        event_id: String,
    },
    #[error(
        "log leaves {from}..{size} do not hash to the tree head signed at size {size}: an event there was altered, removed or reordered; restore the registry database from a backup and report it"
    )]
    HeadMismatch { from: u64, size: u64 },
    #[error(
        "the {what} tree head has size {size} but the log holds {have} leaves: events were removed from the log; restore the registry database from a backup and report it"
    )]
    HeadBeyond {
        what: &'static str,
        size: u64,
        have: u64,
    },
    #[error(
        "the station's tree head (size {size}) is not the root of the log's first {size} leaves: the registry rewrote its log since that station synced; report it"
    )]
    StationHead { size: u64 },
    #[error(
        "the tree head signed at size {size} is not signed by the key in --key-pub: it was forged or the key is another registry's; check --key-pub and report it"
    )]
    BadSignature { size: u64 },
    #[error(
        "event {event_id} of station {station} is stored but not in the log: it was added behind the registry's back or its leaf removed; report it"
    )]
    NotInLog { station: String, event_id: String },
}

/// Verify the whole log of `reg`.
pub async fn verify(
    reg: &Registry,
    key_pub: Option<&[u8; 32]>,
    station_head: Option<ExpectedHead>,
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let heads = reg.tree_heads(false).await?;
    if let Some(k) = key_pub {
        for h in &heads {
            let th = log::TreeHead {
                size: h.size,
                root: h.root,
                at: h.at,
            };
            if !log::verify_head(k, &th, &h.signature) {
                return Err(VerifyError::BadSignature { size: h.size });
            }
        }
    }
    let mut tree = LogTree::new();
    let mut pending = heads.iter().peekable();
    let mut last_checked = 0u64;
    let mut from = 0i64;
    loop {
        let page = reg.log_page(from, from + PAGE).await?;
        if page.is_empty() {
            break;
        }
        for e in page {
            let next = tree.size() as i64;
            if e.index != next {
                return Err(VerifyError::Gap {
                    index: next,
                    next: e.index,
                });
            }
            let Some((seq, kind, payload, created_at)) = &e.event else {
                return Err(VerifyError::Missing {
                    index: e.index,
                    station: e.station_id,
                    event_id: e.event_id,
                });
            };
            let d = log::event_digest(&EventFields {
                station: &e.station_id,
                event_id: &e.event_id,
                seq: *seq,
                kind,
                payload,
                created_at: *created_at,
            });
            if e.digest != d {
                return Err(VerifyError::Altered {
                    index: e.index,
                    station: e.station_id,
                    event_id: e.event_id,
                });
            }
            tree.push(d);
            while let Some(h) = pending.next_if(|h| h.size <= tree.size()) {
                if h.size == tree.size() && h.root != tree.root() {
                    return Err(VerifyError::HeadMismatch {
                        from: last_checked,
                        size: h.size,
                    });
                }
                last_checked = h.size;
            }
            if let Some(s) = station_head
                && s.size == tree.size()
                && s.root != tree.root()
            {
                return Err(VerifyError::StationHead { size: s.size });
            }
        }
        from += PAGE;
    }
    let have = tree.size();
    if let Some(h) = pending.next() {
        return Err(VerifyError::HeadBeyond {
            what: "signed",
            size: h.size,
            have,
        });
    }
    if let Some(s) = station_head
        && s.size > have
    {
        return Err(VerifyError::HeadBeyond {
            what: "station's",
            size: s.size,
            have,
        });
    }
    // Each leaf matched a distinct event (leaves are unique by event), so
    // only more events than leaves leaves one outside the log.
    if reg.event_count().await? != have as i64
        && let Some((station, event_id)) = reg.events_outside_log(1).await?.pop()
    {
        return Err(VerifyError::NotInLog { station, event_id });
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(VerifyReport {
        events: have,
        root: hex::encode(tree.root()),
        heads: heads.len(),
        latest_head: heads.last().cloned(),
        signatures_checked: key_pub.is_some(),
        station_head: station_head.map(|s| s.size),
        seconds,
        events_per_second: have as f64 / seconds.max(1e-9),
    })
}
