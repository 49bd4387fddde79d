//! `--state DIR`: a simulated key that survives restarts.
//!
//! `DIR/state.json` holds the device profile and each applet's persistent
//! state (keys, PINs, credentials), rewritten atomically (temporary file,
//! fsync, rename) after every command that changed it. `DIR/ca-seed` holds
//! the seed of the simulator CAs, so `keyward sim roots --state DIR` prints
//! the roots that key signs with. This is a simulator: its PINs and keys are
//! test material, stored as plainly as a test fixture.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DeviceProfile;
use super::ca::SimCa;
use super::card::VirtualCard;
use super::vpcd::Observer;

const FORMAT_VERSION: u32 = 1;
/// A state file larger than this is refused before parsing.
const MAX_STATE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("cannot read or write simulator state {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator state {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("simulator state {path} is {size} bytes, over the {MAX_STATE_BYTES}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "simulator state {path} belongs to a key with {field} {stored}, not {asked}; drop --{field} or use another --state directory"
    )]
    ProfileMismatch {
        path: PathBuf,
        field: &'static str,
        stored: String,
        asked: String,
    },
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    profile: DeviceProfile,
    applets: BTreeMap<String, serde_json::Value>,
}

/// An opened state directory.
pub struct StateDir {
    dir: PathBuf,
    profile: DeviceProfile,
    /// The JSON last written, to skip rewriting unchanged state.
    last: String,
}

impl StateDir {
    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Open (creating if needed) a state directory. `asked` is the profile
    /// from the command line; `explicit` lists the fields the user actually
    /// gave, which must agree with a stored profile.
    pub fn open(
        dir: &Path,
        asked: DeviceProfile,
        explicit: &[&'static str],
    ) -> Result<StateDir, StateError> {
        create_private_dir(dir)?;
        let mut sd = StateDir {
            dir: dir.to_path_buf(),
            profile: asked.clone(),
            last: String::new(),
        };
        if let Some(stored) = sd.read()? {
            check_profile(&sd.file(), &stored.profile, &asked, explicit)?;
            sd.profile = stored.profile;
        }
        Ok(sd)
    }

    pub fn profile(&self) -> &DeviceProfile {
        &self.profile
    }

    /// Load the applets' stored state into a freshly built card.
    pub fn restore(&mut self, card: &mut VirtualCard) -> Result<(), StateError> {
        let path = self.file();
        let Some(stored) = self.read()? else {
            return Ok(());
        };
        let mut applets = stored.applets;
        for applet in card.applets_mut() {
            if let Some(v) = applets.remove(applet.state_name()) {
                applet.load(v).map_err(|reason| StateError::Invalid {
                    path: path.clone(),
                    reason: format!("{}: {reason}", applet.state_name()),
                })?;
            }
        }
        self.last = serialize(&self.profile, card);
        Ok(())
    }

    /// Write the card's state if it changed since the last write.
    pub fn save(&mut self, card: &VirtualCard) -> Result<(), StateError> {
        let json = serialize(&self.profile, card);
        if json == self.last {
            return Ok(());
        }
        let path = self.file();
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let tmp = self.dir.join("state.json.tmp");
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(json.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        self.last = json;
        Ok(())
    }

    fn read(&self) -> Result<Option<StateFile>, StateError> {
        let path = self.file();
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_STATE_BYTES {
            return Err(StateError::TooLarge {
                path,
                size: meta.len(),
            });
        }
        let text = fs::read_to_string(&path).map_err(io)?;
        let stored: StateFile = serde_json::from_str(&text).map_err(|e| StateError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if stored.version != FORMAT_VERSION {
            return Err(StateError::Invalid {
                path,
                reason: format!(
                    "format version {} (this keyward reads {FORMAT_VERSION})",
                    stored.version
                ),
            });
        }
        Ok(Some(stored))
    }
}

impl Observer for StateDir {
    fn after_command(&mut self, card: &VirtualCard) {
        // A failed write must not take the card out of the reader; it is
        // reported and retried after the next command.
        if let Err(e) = self.save(card) {
            tracing::error!(error = %e, "could not save simulator state");
        }
    }
}

fn serialize(profile: &DeviceProfile, card: &VirtualCard) -> String {
    let applets = card
        .applets()
        .filter_map(|a| a.save().map(|v| (a.state_name().to_string(), v)))
        .collect();
    let file = StateFile {
        version: FORMAT_VERSION,
        profile: profile.clone(),
        applets,
    };
    // Serialising plain data (maps, strings, numbers) cannot fail.
    serde_json::to_string_pretty(&file).expect("state serialises")
}

fn check_profile(
    path: &Path,
    stored: &DeviceProfile,
    asked: &DeviceProfile,
    explicit: &[&'static str],
) -> Result<(), StateError> {
    let mismatch = |field, stored: String, asked: String| StateError::ProfileMismatch {
        path: path.to_path_buf(),
        field,
        stored,
        asked,
    };
    if explicit.contains(&"serial") && stored.serial != asked.serial {
        return Err(mismatch(
            "serial",
            stored.serial.to_string(),
            asked.serial.to_string(),
        ));
    }
    if explicit.contains(&"firmware") && stored.firmware != asked.firmware {
        return Err(mismatch(
            "firmware",
            stored.firmware.to_string(),
            asked.firmware.to_string(),
        ));
    }
    if explicit.contains(&"quirks") && stored.quirks != asked.quirks {
        return Err(mismatch(
            "quirks",
            stored.quirks.to_string(),
            asked.quirks.to_string(),
        ));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// The CA seed for a state directory: `DIR/ca-seed` if present, else the
/// documented default, written there so the directory is self-describing.
pub fn ca_seed(dir: Option<&Path>) -> Result<Vec<u8>, StateError> {
    let Some(dir) = dir else {
        return Ok(SimCa::DEFAULT_SEED.to_vec());
    };
    let path = dir.join("ca-seed");
    match fs::read(&path) {
        Ok(seed) if seed.is_empty() || seed.len() > 4096 => Err(StateError::Invalid {
            path,
            reason: format!("seed of {} bytes (1 to 4096 allowed)", seed.len()),
        }),
        Ok(seed) => Ok(seed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(dir)?;
            fs::write(&path, SimCa::DEFAULT_SEED)
                .map_err(|source| StateError::Io { path, source })?;
            Ok(SimCa::DEFAULT_SEED.to_vec())
        }
        Err(source) => Err(StateError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::apdu::{Command, Response, sw};
    use crate::sim::card::{Applet, CardEnv, Interrupt};
    use crate::sim::{Firmware, Person, person::PlainPresence};

    /// Remembers the last byte it was sent.
    struct Memo(u8);
    impl Applet for Memo {
        fn aid(&self) -> &'static [u8] {
            &[0xA0, 0, 0, 0, 9]
        }
        fn select(&mut self) -> Response {
            Response::status(sw::OK)
        }
        fn process(&mut self, cmd: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
            self.0 = cmd.p1;
            Ok(Response::status(sw::OK))
        }
        fn state_name(&self) -> &'static str {
            "memo"
        }
        fn save(&self) -> Option<serde_json::Value> {
            Some(serde_json::json!(self.0))
        }
        fn load(&mut self, v: serde_json::Value) -> Result<(), String> {
            self.0 = v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or("not a byte")?;
            Ok(())
        }
    }

    fn card() -> VirtualCard {
        VirtualCard::new(vec![Box::new(Memo(0))])
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let profile = DeviceProfile::new(777, Firmware::V5_4_3);
        let mut sd = StateDir::open(dir.path(), profile.clone(), &["serial"]).unwrap();
        let mut c = card();
        sd.restore(&mut c).unwrap();
        let mut p = PlainPresence(Person::Immediate);
        c.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 9], &mut p)
            .unwrap();
        c.transmit(&[0x00, 0x01, 0x42, 0x00], &mut p).unwrap();
        sd.save(&c).unwrap();

        let mut sd = StateDir::open(dir.path(), DeviceProfile::default(), &[]).unwrap();
        assert_eq!(sd.profile(), &profile);
        let mut c = card();
        sd.restore(&mut c).unwrap();
        assert_eq!(
            c.applets().next().unwrap().save(),
            Some(serde_json::json!(0x42))
        );
    }

    #[test]
    fn a_conflicting_serial_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let mut sd =
            StateDir::open(dir.path(), DeviceProfile::new(1, Firmware::V5_7_1), &[]).unwrap();
        sd.save(&card()).unwrap();
        let err = StateDir::open(
            dir.path(),
            DeviceProfile::new(2, Firmware::V5_7_1),
            &["serial"],
        )
        .err()
        .unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("serial 1, not 2") && msg.contains("another --state directory"),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_or_foreign_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("state.json"), "{not json").unwrap();
        let err = StateDir::open(dir.path(), DeviceProfile::default(), &[])
            .err()
            .unwrap();
        assert!(matches!(err, StateError::Invalid { .. }), "{err}");
        fs::write(dir.path().join("state.json"), r#"{"version":9,"profile":{"serial":1,"firmware":[5,7,1],"form_factor":1,"aaguid":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"fido2":true,"piv":true},"applets":{}}"#).unwrap();
        let err = StateDir::open(dir.path(), DeviceProfile::default(), &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("format version 9"), "{err}");
        fs::write(dir.path().join("state.json"), r#"{"version":1,"profile":{"serial":1,"firmware":[5,7,1],"form_factor":1,"aaguid":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"fido2":true,"piv":true},"applets":{"memo":"x"}}"#).unwrap();
        let mut sd = StateDir::open(dir.path(), DeviceProfile::default(), &[]).unwrap();
        let err = sd.restore(&mut card()).err().unwrap();
        assert!(err.to_string().contains("memo: not a byte"), "{err}");
    }

    #[test]
    fn ca_seed_defaults_and_is_kept() {
        assert_eq!(ca_seed(None).unwrap(), SimCa::DEFAULT_SEED);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ca_seed(Some(dir.path())).unwrap(), SimCa::DEFAULT_SEED);
        fs::write(dir.path().join("ca-seed"), b"custom").unwrap();
        assert_eq!(ca_seed(Some(dir.path())).unwrap(), b"custom");
        fs::write(dir.path().join("ca-seed"), b"").unwrap();
        assert!(ca_seed(Some(dir.path())).is_err());
    }
}
