//! The generated PINs of a bulk run, sealed with age to the operator's
//! recipient(s) for separate delivery. The file is rewritten (atomically,
//! re-encrypted) after every key that got a PIN, so a run that stops half
//! way still leaves the PINs of every key it bound. Nothing else in keyward
//! sees these PINs: not the report, the progress output, the log or the
//! ledger.
//!
//! Plaintext (CSV, every field quoted):
//! `"serial","subject","jti","binding","pin","puk"`, one row per key (the PUK
//! when the ticket had PIV operations, else empty).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use super::report::write_atomic;
use crate::age::{self, Recipient};
use crate::secret::{Pin, Puk};

/// One key's PIN and whom it belongs to.
pub struct PinRecord {
    pub serial: Option<String>,
    pub subject: String,
    pub jti: String,
    pub binding: String,
    /// The FIDO2 PIN (forceChangePin is set on the key).
    pub pin: Option<Pin>,
    /// The PIV PUK set on the card.
    pub puk: Option<Puk>,
}

/// The age-encrypted PIN file of one run.
pub struct PinFile {
    path: PathBuf,
    recipients: Vec<Recipient>,
    records: Mutex<Vec<PinRecord>>,
}

/// The PIN file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinFileError {
    #[error(
        "generated PINs need --pin-recipient age1…: they are only ever written encrypted to it (age-keygen makes one)"
    )]
    NoRecipient,
    #[error("cannot encrypt the PIN file: {0}")]
    Encrypt(#[from] age::AgeError),
    #[error("cannot write the PIN file: {0}")]
    Io(#[from] std::io::Error),
}

impl PinFile {
    /// A PIN file at `path` for `recipients` (at least one).
    pub fn new(path: &Path, recipients: Vec<Recipient>) -> Result<PinFile, PinFileError> {
        if recipients.is_empty() {
            return Err(PinFileError::NoRecipient);
        }
        Ok(PinFile {
            path: path.to_path_buf(),
            recipients,
            records: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many PINs are sealed.
    pub fn len(&self) -> usize {
        self.records.lock().map_or(0, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write the file as it stands (at the start of a run: sealed, with no
    /// PIN yet), proving the destination is writable before any key.
    pub fn seal_now(&self) -> Result<(), PinFileError> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        self.write(&records)
    }

    /// Add one key's PIN and rewrite the encrypted file.
    pub fn add(&self, rec: PinRecord) -> Result<(), PinFileError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.push(rec);
        self.write(&records)
    }

    fn write(&self, records: &[PinRecord]) -> Result<(), PinFileError> {
        let plain = plaintext(records);
        let sealed = age::encrypt(&self.recipients, &plain, &mut crate::random::fill)?;
        write_atomic(&self.path, &sealed, 0o600)?;
        Ok(())
    }
}

/// The CSV plaintext, built in one zeroizing buffer allocated up front (no
/// reallocation leaves a copy of a PIN behind).
fn plaintext(records: &[PinRecord]) -> Zeroizing<Vec<u8>> {
    let size: usize = 64
        + records
            .iter()
            .map(|r| {
                let s = r.serial.as_deref().unwrap_or("");
                2 * (s.len() + r.subject.len() + r.jti.len() + r.binding.len())
                    + 2 * r.pin.as_ref().map_or(0, |p| p.expose_secret().len())
                    + 2 * r.puk.as_ref().map_or(0, |p| p.expose_secret().len())
                    + 16
            })
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    let header = ["serial", "subject", "jti", "binding", "pin", "puk"];
    row(&mut out, &header);
    for r in records {
        row(
            &mut out,
            &[
                r.serial.as_deref().unwrap_or(""),
                &r.subject,
                &r.jti,
                &r.binding,
                r.pin.as_ref().map_or("", |p| p.expose_secret()),
                r.puk.as_ref().map_or("", |p| p.expose_secret()),
            ],
        );
    }
    debug_assert!(out.len() <= size, "the PIN buffer was reallocated");
    out
}

fn row(out: &mut Vec<u8>, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        for b in f.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::age::Identity;

    fn rec(n: u32, pin: &str) -> PinRecord {
        PinRecord {
            serial: Some(n.to_string()),
            subject: format!("user \"{n}\", x@example.org"),
            jti: format!("jti-{n:016}"),
            binding: format!("b{n}"),
            pin: Some(Pin::from(pin)),
            puk: (n == 2).then(|| Puk::from("11223344")),
        }
    }

    #[test]
    fn sealed_to_the_recipient_and_rewritten_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate(&mut crate::random::fill);
        let path = dir.path().join("pins.age");
        let f = PinFile::new(&path, vec![id.recipient()]).unwrap();
        f.add(rec(1, "48213377")).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&first).contains("48213377"));
        f.add(rec(2, "90817264")).unwrap();
        let sealed = std::fs::read(&path).unwrap();
        let plain = crate::age::decrypt(&[id], &sealed).unwrap();
        let text = String::from_utf8(plain.to_vec()).unwrap();
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<Vec<String>> = rd
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], "user \"1\", x@example.org");
        assert_eq!(rows[0][4], "48213377");
        assert_eq!(rows[1][4], "90817264");
        assert_eq!(rows[0][5], "");
        assert_eq!(rows[1][5], "11223344");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn refuses_without_a_recipient() {
        let e = PinFile::new(Path::new("x"), vec![]).err().unwrap();
        assert!(e.to_string().contains("--pin-recipient"), "{e}");
    }
}
