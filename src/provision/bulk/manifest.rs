//! The bulk manifest: the tickets of one bulk run, in JSON lines or CSV
//! (docs/bulk.md).
//!
//! Everything here happens before any key is touched: the size limits, the
//! line-numbered syntax errors, the structural decoding of each ticket (its
//! claims are read, not yet trusted: the run verifies every ticket before
//! starting), duplicate ticket ids and conflicting device assignments.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ticket::{self, Claims, TicketError};

/// The largest manifest read (about 500 tickets of 16 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;
/// At most this many tickets in one run.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest label kept.
pub const MAX_LABEL_CHARS: usize = 200;
/// Room for the JSON around a ticket on one JSON line.
const LINE_OVERHEAD: usize = 1024;

/// How the manifest is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One JSON object per line: `{"ticket": "...", "device": "...", "label": "..."}`.
    JsonLines,
    /// A header row naming the columns `ticket` (required), `device`, `label`.
    Csv,
}

impl Format {
    /// From the file name (`.jsonl`, `.ndjson`, `.json` or `.csv`), else
    /// from the content: a first non-blank line starting with `{` is JSON
    /// lines, anything else CSV.
    pub fn detect(path: &Path, text: &[u8]) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson" | "json") => return Format::JsonLines,
            Some("csv") => return Format::Csv,
            _ => {}
        }
        let first = text
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .find(|l| !l.is_empty());
        if first.is_some_and(|l| l.starts_with(b"{")) {
            Format::JsonLines
        } else {
            Format::Csv
        }
    }
}

/// One ticket of the manifest, with what its (not yet verified) claims say.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line of the manifest.
    pub line: usize,
    /// The ticket as written (compact JWS, or the general JSON form).
    pub ticket: String,
    /// The key serial this ticket must go to: the manifest's `device`, else
    /// the ticket's `device.serial` claim; `None` = the next free key.
    pub serial: Option<u32>,
    pub label: Option<String>,
    pub iss: String,
    pub jti: String,
    pub sub: String,
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub format: Format,
    pub entries: Vec<Entry>,
}

/// Why a manifest was refused. Every variant names the file or line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot read the manifest {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the manifest {path} is larger than {max} bytes; split it into several runs")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("the manifest holds more than {max} tickets; split it into several runs")]
    TooManyEntries { max: usize },
    #[error("the manifest holds no ticket")]
    Empty,
    #[error("manifest line {line}: {message}")]
    Line { line: usize, message: String },
    #[error(
        "manifest line {second}: ticket id (jti) {jti:?} of issuer {iss:?} already appears on line {first}; each ticket can be used once"
    )]
    DuplicateJti {
        iss: String,
        jti: String,
        first: usize,
        second: usize,
    },
    #[error(
        "manifest line {line}: the device column says serial {manifest} but the ticket is issued for serial {ticket}"
    )]
    DeviceConflict {
        line: usize,
        manifest: u32,
        ticket: u32,
    },
    #[error(
        "manifest line {second}: serial {serial} is already assigned a ticket on line {first}; a key takes one ticket per run"
    )]
    DuplicateDevice {
        serial: u32,
        first: usize,
        second: usize,
    },
}

fn line_err(line: usize, message: impl Into<String>) -> ManifestError {
    ManifestError::Line {
        line,
        message: message.into(),
    }
}

/// Read and check the manifest at `path`; tickets larger than
/// `max_ticket_bytes` are refused.
pub fn load(path: &Path, max_ticket_bytes: usize) -> Result<Manifest, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let too_large = || ManifestError::TooLarge {
        path: path.to_path_buf(),
        max: MAX_MANIFEST_BYTES,
    };
    if f.metadata().map_err(io)?.len() > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let mut text = Vec::new();
    // The file may grow while it is read: never read past the limit.
    f.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    parse(&text, Format::detect(path, &text), max_ticket_bytes)
}

/// Check a manifest already in memory.
pub fn parse(
    text: &[u8],
    format: Format,
    max_ticket_bytes: usize,
) -> Result<Manifest, ManifestError> {
    let raw = match format {
        Format::JsonLines => json_lines(text, max_ticket_bytes)?,
        Format::Csv => csv_rows(text)?,
    };
    if raw.is_empty() {
        return Err(ManifestError::Empty);
    }
    let mut entries = Vec::with_capacity(raw.len());
    let mut jtis: HashMap<(String, String), usize> = HashMap::new();
    let mut serials: HashMap<u32, usize> = HashMap::new();
    for r in raw {
        let e = entry(r, max_ticket_bytes)?;
        if let Some(first) = jtis.insert((e.iss.clone(), e.jti.clone()), e.line) {
            return Err(ManifestError::DuplicateJti {
                iss: e.iss,
                jti: e.jti,
                first,
                second: e.line,
            });
        }
        if let Some(s) = e.serial
            && let Some(first) = serials.insert(s, e.line)
        {
            return Err(ManifestError::DuplicateDevice {
                serial: s,
                first,
                second: e.line,
            });
        }
        entries.push(e);
    }
    Ok(Manifest { format, entries })
}

/// A row before its ticket is decoded.
struct Raw {
    line: usize,
    ticket: String,
    device: Option<String>,
    label: Option<String>,
}

/// A JSON line's fields. `device` may be a string or a number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    ticket: String,
    #[serde(default)]
    device: Option<serde_json::Value>,
    #[serde(default)]
    label: Option<String>,
}

fn json_lines(text: &[u8], max_ticket_bytes: usize) -> Result<Vec<Raw>, ManifestError> {
    let mut out = Vec::new();
    for (i, l) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let l = l.trim_ascii();
        if l.is_empty() {
            continue;
        }
        if l.len() > max_ticket_bytes + LINE_OVERHEAD {
            return Err(line_err(
                line,
                format!(
                    "the line is {} bytes, more than a ticket of at most {max_ticket_bytes} bytes needs",
                    l.len()
                ),
            ));
        }
        if out.len() == MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries { max: MAX_ENTRIES });
        }
        let row: JsonRow = serde_json::from_slice(l).map_err(|e| {
            line_err(
                line,
                format!(
                    "not a JSON object with \"ticket\" and optional \"device\", \"label\": {e}"
                ),
            )
        })?;
        let device = match row.device {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(line_err(line, "\"device\" must be a string or a number")),
        };
        out.push(Raw {
            line,
            ticket: row.ticket,
            device,
            label: row.label,
        });
    }
    Ok(out)
}

fn csv_rows(text: &[u8]) -> Result<Vec<Raw>, ManifestError> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let headers = rd
        .headers()
        .map_err(|e| line_err(1, format!("the CSV header row: {e}")))?
        .clone();
    let mut col = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let name = h.to_ascii_lowercase();
        if !matches!(name.as_str(), "ticket" | "device" | "label") {
            return Err(line_err(
                1,
                format!("unknown column {h:?}; the columns are ticket, device, label"),
            ));
        }
        if col.insert(name, i).is_some() {
            return Err(line_err(1, format!("column {h:?} appears twice")));
        }
    }
    let Some(&t) = col.get("ticket") else {
        return Err(line_err(
            1,
            "the header row has no \"ticket\" column (CSV manifests start with a header row: ticket,device,label)",
        ));
    };
    let mut out = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            line_err(line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if out.len() == MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries { max: MAX_ENTRIES });
        }
        let get = |name: &str| {
            col.get(name)
                .and_then(|&i| rec.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        out.push(Raw {
            line,
            ticket: rec.get(t).unwrap_or_default().to_string(),
            device: get("device"),
            label: get("label"),
        });
    }
    Ok(out)
}

/// `12345678` or `serial:12345678`.
pub fn parse_device(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("serial:").unwrap_or(s);
    digits.parse::<u32>().map_err(|_| {
        format!("device {s:?} is not a key serial (write it as 12345678 or serial:12345678)")
    })
}

fn entry(r: Raw, max_ticket_bytes: usize) -> Result<Entry, ManifestError> {
    let line = r.line;
    if r.ticket.trim().is_empty() {
        return Err(line_err(line, "the ticket is empty"));
    }
    let bad = |e: TicketError| line_err(line, format!("the ticket is malformed: {e}"));
    let raw = ticket::parse(r.ticket.as_bytes(), max_ticket_bytes).map_err(bad)?;
    let claims = Claims::from_payload(&raw.payload).map_err(bad)?;
    let claimed = claims.device.as_ref().map(|d| d.serial);
    let given = r
        .device
        .as_deref()
        .map(parse_device)
        .transpose()
        .map_err(|m| line_err(line, m))?;
    let serial = match (given, claimed) {
        (Some(m), Some(t)) if m != t => {
            return Err(ManifestError::DeviceConflict {
                line,
                manifest: m,
                ticket: t,
            });
        }
        (g, c) => g.or(c),
    };
    let label = r.label.map(|l| l.chars().take(MAX_LABEL_CHARS).collect());
    Ok(Entry {
        line,
        ticket: r.ticket.trim().to_string(),
        serial,
        label,
        iss: claims.iss,
        jti: claims.jti,
        sub: claims.sub,
    })
}

#[cfg(test)]
mod tests;
