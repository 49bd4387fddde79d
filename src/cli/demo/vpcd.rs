//! Putting the demo's simulated key into a free vpcd reader of pcscd, so the
//! workflow reaches it exactly as it reaches a real key on a reader: FIDO2
//! over the NFC mapping and PIV, through pcscd.
//!
//! Which TCP port feeds which reader comes from the vpcd blocks in
//! `/etc/reader.conf.d/` (`DEVICENAME /dev/null:PORT` and `FRIENDLYNAME`;
//! each block is two readers, "NAME 00 00" on PORT and "NAME 00 01" on
//! PORT+1). A port whose reader already holds a card is never dialled: the
//! driver serves one card per reader and would leave our connection in its
//! backlog, where it later confuses the next card. The reader that the card
//! appears in is what decides, not the guess: after connecting, the demo
//! waits for a reader that was empty to report a card, and confirms it is
//! its own by the serial (the read-only probe of `keyward devices`).
//!
//! A port chosen here is leased with the same advisory lock file the test
//! rig uses (`$TMPDIR/keyward-vpcd-PORT.lock`), so a demo never takes a
//! reader a test is using. An explicit `--vpcd-port` is the caller's lease
//! and is used as given.

use std::ffi::CString;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::detect::identify::probe_reader_settled;
use crate::sim::Person;
use crate::sim::card::VirtualCard;
use crate::sim::vpcd::{Shutdown, serve_connection};

/// The vpcd ports of the stock Debian block and the test rig's extra ones,
/// used when `/etc/reader.conf.d` names none.
const DEFAULT_PORTS: std::ops::RangeInclusive<u16> = 35963..=35970;

/// Why the key could not go into a reader (the demo then runs FIDO2
/// in-process and says how to get PIV).
#[derive(Debug)]
pub enum Unavailable {
    /// pcscd does not answer.
    PcscdDown(String),
    /// pcscd runs but has no vpcd reader.
    NoVpcdReader,
    /// Every vpcd reader holds a card, is leased, or never took ours.
    AllReadersBusy(String),
}

impl Unavailable {
    /// One line for the person running the demo.
    pub fn describe(&self) -> String {
        match self {
            Unavailable::PcscdDown(e) => format!("pcscd is not running ({e})"),
            Unavailable::NoVpcdReader => {
                "pcscd is running but has no vpcd (virtual smart card) reader".into()
            }
            Unavailable::AllReadersBusy(why) => format!("no vpcd reader is free ({why})"),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Unavailable::PcscdDown(_) | Unavailable::NoVpcdReader => {
                "install pcscd and the vsmartcard vpcd driver with \
                 `sudo apt-get install pcscd vsmartcard-vpcd`, start pcscd with `sudo pcscd` \
                 (or `sudo systemctl restart pcscd`), check with `pcsc_scan -r` (package pcsc-tools) that reader \
                 \"Virtual PCD 00 00\" is listed, and run `keyward demo` again"
            }
            Unavailable::AllReadersBusy(_) => {
                "free a vpcd reader (stop a `keyward sim --vpcd` that holds one) or add readers (`.ci/rig-setup` adds six), and run `keyward demo` again"
            }
        }
    }

    /// The same as commands, one per line, for the terminal.
    pub fn commands(&self) -> &'static [&'static str] {
        match self {
            Unavailable::PcscdDown(_) | Unavailable::NoVpcdReader => &[
                "sudo apt-get install pcscd vsmartcard-vpcd pcsc-tools",
                "sudo pcscd            # or: sudo systemctl restart pcscd",
                "pcsc_scan -r          # lists reader \"Virtual PCD 00 00\"",
                "keyward demo",
            ],
            Unavailable::AllReadersBusy(_) => &[
                "keyward devices       # which readers hold a card",
                "sudo bash .ci/rig-setup   # six more vpcd readers (restarts pcscd)",
                "keyward demo",
            ],
        }
    }

    /// A stable code for `--json`.
    pub fn code(&self) -> &'static str {
        match self {
            Unavailable::PcscdDown(_) => "no-pcscd",
            Unavailable::NoVpcdReader => "no-vpcd-reader",
            Unavailable::AllReadersBusy(_) => "no-free-reader",
        }
    }
}

/// The simulated card in a reader, served by a thread until [`Attached`]
/// is dropped (the card then leaves the reader).
pub struct Attached {
    pub reader: String,
    pub port: u16,
    shutdown: Shutdown,
    thread: Option<JoinHandle<VirtualCard>>,
    _lease: Option<File>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.shutdown.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One vpcd port and the reader it feeds, when the configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub port: u16,
    pub reader: Option<String>,
}

/// Put `card` (the key with `serial`) into a free vpcd reader: `port`
/// alone when given, else the first free configured one.
pub fn attach(card: VirtualCard, serial: u32, port: Option<u16>) -> Result<Attached, Unavailable> {
    let ctx = pcsc::Context::establish(pcsc::Scope::System)
        .map_err(|e| Unavailable::PcscdDown(e.to_string()))?;
    let (virt, empty) = vpcd_readers(&ctx)?;
    if empty.is_empty() {
        return Err(Unavailable::AllReadersBusy(format!(
            "all {} vpcd readers hold a card",
            virt.len()
        )));
    }
    let config = configured_ports(Path::new("/etc/reader.conf.d"));
    let candidates = match port {
        Some(p) => given_port(&config, p, &empty)?,
        None => choose(&config, &empty),
    };
    if candidates.is_empty() {
        return Err(Unavailable::AllReadersBusy(
            "the empty readers are leased by another keyward".into(),
        ));
    }
    let mut card = card;
    let mut tried: Vec<String> = Vec::new();
    for (p, lease) in candidates {
        let watch: Vec<String> = match &p.reader {
            Some(r) => vec![r.clone()],
            None => empty.clone(),
        };
        // A reader the configuration names shows the card within a few
        // pcscd polls; an unknown mapping gets a shorter look per port.
        let wait = if p.reader.is_some() || port.is_some() {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(3)
        };
        match try_port(&ctx, card, serial, p.port, &watch, wait) {
            Ok((reader, shutdown, thread)) => {
                return Ok(Attached {
                    reader,
                    port: p.port,
                    shutdown,
                    thread: Some(thread),
                    _lease: lease,
                });
            }
            Err(c) => {
                card = c;
                let t = p.port.to_string();
                if !tried.contains(&t) {
                    tried.push(t);
                }
            }
        }
    }
    Err(Unavailable::AllReadersBusy(format!(
        "no card appeared through vpcd port(s) {}",
        tried.join(", ")
    )))
}

/// The vpcd readers pcscd has, and those of them without a card.
fn vpcd_readers(ctx: &pcsc::Context) -> Result<(Vec<String>, Vec<String>), Unavailable> {
    let virt: Vec<String> = match ctx.list_readers_owned() {
        Ok(rs) => rs
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .filter(|r| r.starts_with("Virtual PCD"))
            .collect(),
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(Unavailable::PcscdDown(e.to_string())),
    };
    if virt.is_empty() {
        return Err(Unavailable::NoVpcdReader);
    }
    let present = card_present(ctx, &virt);
    let empty = virt
        .iter()
        .zip(&present)
        .filter(|(_, p)| !**p)
        .map(|(r, _)| r.clone())
        .collect();
    Ok((virt, empty))
}

/// The caller's port (leased by the caller): refused at once when its
/// reader is known to hold a card. Listed twice: under load the driver may
/// still hold a stale connection of the port's previous card in its
/// backlog, and a second insertion gets through, as a person re-inserts.
fn given_port(
    config: &[Port],
    port: u16,
    empty: &[String],
) -> Result<Vec<(Port, Option<File>)>, Unavailable> {
    let reader = config
        .iter()
        .find(|c| c.port == port)
        .and_then(|c| c.reader.clone());
    if let Some(r) = reader.as_ref().filter(|r| !empty.contains(r)) {
        return Err(Unavailable::AllReadersBusy(format!(
            "reader \"{r}\" of vpcd port {port} already holds a card"
        )));
    }
    let one = Port { port, reader };
    Ok(vec![(one.clone(), None), (one, None)])
}

/// The ports worth dialling, in order, each with its lease: configured
/// ports whose reader is empty, or every default port when the
/// configuration cannot be read.
fn choose(config: &[Port], empty: &[String]) -> Vec<(Port, Option<File>)> {
    let ports: Vec<Port> = if config.is_empty() {
        DEFAULT_PORTS
            .map(|port| Port { port, reader: None })
            .collect()
    } else {
        config
            .iter()
            .filter(|p| match &p.reader {
                Some(r) => empty.contains(r),
                None => true,
            })
            .cloned()
            .collect()
    };
    ports
        .into_iter()
        .filter_map(|p| lease(p.port).map(|l| (p, l)))
        .collect()
}

/// The rig's advisory lock for `port`: `None` when another process holds
/// it; `Some(None)` when the lock file cannot be created (which does not
/// stop the demo).
fn lease(port: u16) -> Option<Option<File>> {
    let path = std::env::temp_dir().join(format!("keyward-vpcd-{port}.lock"));
    // Another user's lock file can still be locked through a read-only
    // descriptor.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path));
    let Ok(f) = f else {
        return Some(None);
    };
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (r == 0).then_some(Some(f))
}

type Served = (String, Shutdown, JoinHandle<VirtualCard>);

/// Connect the card to `port` and wait for one of `watch` to show it;
/// on failure the card comes back for the next port.
fn try_port(
    ctx: &pcsc::Context,
    mut card: VirtualCard,
    serial: u32,
    port: u16,
    watch: &[String],
    wait: Duration,
) -> Result<Served, VirtualCard> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return Err(card);
    };
    let shutdown = Shutdown::default();
    let sd = shutdown.clone();
    let thread = std::thread::spawn(move || {
        card.power_cycle();
        if let Err(e) = serve_connection(stream, &mut card, Person::Immediate, &mut (), &sd) {
            tracing::warn!(error = %e, "demo card: vpcd connection failed");
        }
        card
    });
    match wait_for_ours(ctx, watch, serial, wait) {
        Some(reader) => Ok((reader, shutdown, thread)),
        None => {
            shutdown.stop();
            match thread.join() {
                Ok(card) => Err(card),
                // The serving thread panicked: nothing to retry with.
                Err(_) => Err(VirtualCard::new(Vec::new())),
            }
        }
    }
}

/// Wait until our card (confirmed by its serial, read-only, as `keyward
/// devices` identifies keys) shows in one of `readers`: another process
/// may insert a card into one of them at the same moment.
fn wait_for_ours(
    ctx: &pcsc::Context,
    readers: &[String],
    serial: u32,
    wait: Duration,
) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut watch = readers.to_vec();
    while !watch.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let reader = wait_for_card(ctx, &watch, left)?;
        match probe_reader_settled(ctx, &reader) {
            Ok(id) if id.serial == Some(serial) => return Some(reader),
            other => {
                tracing::debug!(reader, ?other, "a card that is not the demo's");
                watch.retain(|r| *r != reader);
            }
        }
    }
    None
}

/// Whether each reader holds a card now.
fn card_present(ctx: &pcsc::Context, readers: &[String]) -> Vec<bool> {
    let mut states = reader_states(readers);
    if ctx
        .get_status_change(Duration::from_millis(0), &mut states)
        .is_err()
    {
        return vec![true; readers.len()];
    }
    states
        .iter()
        .map(|s| s.event_state().contains(pcsc::State::PRESENT))
        .collect()
}

fn reader_states(readers: &[String]) -> Vec<pcsc::ReaderState> {
    readers
        .iter()
        .filter_map(|r| CString::new(r.as_str()).ok())
        .map(|n| pcsc::ReaderState::new(n, pcsc::State::UNAWARE))
        .collect()
}

/// Wait until one of `readers` holds a card; its name.
fn wait_for_card(ctx: &pcsc::Context, readers: &[String], wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut states = reader_states(readers);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left.min(Duration::from_millis(500)), &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => {
                tracing::debug!(error = %e, "waiting for the demo card");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for s in &mut states {
            if s.event_state().contains(pcsc::State::PRESENT) {
                return Some(s.name().to_string_lossy().into_owned());
            }
            s.sync_current_state();
        }
        if left.is_zero() {
            return None;
        }
    }
}

/// The vpcd ports and reader names from pcsc-lite's reader configuration:
/// every block whose LIBPATH is a vpcd driver and whose DEVICENAME is
/// `/dev/null:PORT` (hex with 0x, else decimal).
pub fn configured_ports(dir: &Path) -> Vec<Port> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        // Reader configuration files are small; a large one is not ours.
        if std::fs::metadata(&f).map_or(true, |m| m.len() > 64 * 1024) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&f) {
            out.extend(parse_reader_conf(&text));
        }
    }
    out.sort_by_key(|p| p.port);
    out.dedup_by_key(|p| p.port);
    out
}

/// The vpcd blocks of one reader.conf file.
pub fn parse_reader_conf(text: &str) -> Vec<Port> {
    let mut out = Vec::new();
    let (mut name, mut port, mut vpcd) = (None::<String>, None::<u16>, false);
    let mut flush = |name: &mut Option<String>, port: &mut Option<u16>, vpcd: &mut bool| {
        if let (Some(n), Some(p), true) = (name.take(), port.take(), *vpcd) {
            out.push(Port {
                port: p,
                reader: Some(format!("{n} 00 00")),
            });
            if let Some(p1) = p.checked_add(1) {
                out.push(Port {
                    port: p1,
                    reader: Some(format!("{n} 00 01")),
                });
            }
        }
        *vpcd = false;
    };
    for line in text.lines().map(str::trim) {
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "FRIENDLYNAME" => {
                if name.is_some() {
                    flush(&mut name, &mut port, &mut vpcd);
                }
                name = Some(value.trim_matches('"').to_string());
            }
            "DEVICENAME" => {
                port = value.rsplit_once(':').and_then(|(_, p)| parse_port(p));
            }
            "LIBPATH" => vpcd = value.contains("vpcd"),
            _ => {}
        }
    }
    flush(&mut name, &mut port, &mut vpcd);
    out
}

fn parse_port(s: &str) -> Option<u16> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_conf_blocks_give_two_readers_each() {
        let text = "# comment\nFRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x8C7B\n\
                    LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x8C7B\n\
                    FRIENDLYNAME \"Other\"\nDEVICENAME /dev/ttyS0\nLIBPATH /usr/lib/libccidtwin.so\n\
                    FRIENDLYNAME \"Virtual PCD B\"\nDEVICENAME /dev/null:35965\n\
                    LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd-keyward-B.so\n";
        let ports = parse_reader_conf(text);
        let got: Vec<(u16, &str)> = ports
            .iter()
            .map(|p| (p.port, p.reader.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (35963, "Virtual PCD 00 00"),
                (35964, "Virtual PCD 00 01"),
                (35965, "Virtual PCD B 00 00"),
                (35966, "Virtual PCD B 00 01"),
            ]
        );
    }

    #[test]
    fn malformed_reader_conf_gives_nothing_and_no_panic() {
        for text in [
            "",
            "FRIENDLYNAME",
            "DEVICENAME /dev/null:0xZZZZ\nLIBPATH vpcd\nFRIENDLYNAME \"x\"",
            "FRIENDLYNAME \"x\"\nDEVICENAME /dev/null:99999\nLIBPATH libifdvpcd.so",
            "FRIENDLYNAME \"x\"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH libccid.so",
        ] {
            assert!(parse_reader_conf(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn only_ports_of_empty_readers_are_dialled() {
        let config = parse_reader_conf(
            "FRIENDLYNAME \"Virtual PCD Z\"\nDEVICENAME /dev/null:0xF000\nLIBPATH libifdvpcd.so\n",
        );
        let chosen = choose(&config, &["Virtual PCD Z 00 01".to_string()]);
        let ports: Vec<u16> = chosen.iter().map(|(p, _)| p.port).collect();
        assert_eq!(ports, [0xF001]);
    }
}
