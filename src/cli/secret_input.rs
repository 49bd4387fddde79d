//! The one way the CLI reads a secret (PIN, PUK, management key): a line
//! from a file descriptor (`--pin-fd N` and friends), a prompt on the
//! terminal with echo off, or a line of standard input when it is not a
//! terminal. Never from argv. Every command reads secrets through here.
//!
//! The prompt refuses to ask when it cannot turn echo off (a "terminal"
//! that is not one, or settings it cannot change): it never shows a secret
//! as it is typed. Terminal control is `rustix::termios` (already built for
//! clap's terminal width, no `unsafe`), so the refusal is ours to make.
//!
//! Lines are read one byte at a time into a wiped buffer of fixed capacity:
//! no reader buffer keeps a copy, nothing is read past the line (two
//! secrets can come from one descriptor), and a line longer than
//! [`MAX_LINE`] is refused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;

use anyhow::{Context, Result};
use rustix::termios::{self, LocalModes, OptionalActions};
use zeroize::Zeroizing;

use super::Failure;
use crate::secret::{Pin, Puk};

/// The longest secret line accepted (a CTAP PIN is at most 63 bytes, a
/// management key 64 hex digits).
pub const MAX_LINE: usize = 256;

/// A secret's descriptor option: its flag (for messages) and the number
/// given, if any: `Fd("--pin-fd", args.pin_fd)`.
#[derive(Debug, Clone, Copy)]
pub struct Fd(pub &'static str, pub Option<i32>);

/// Where secrets come from. One descriptor can give several secrets, one
/// line each; descriptors are owned (and closed) by this reader.
#[derive(Default)]
pub struct SecretInput {
    fds: HashMap<i32, File>,
}

impl SecretInput {
    /// One secret: a line from the descriptor given with the option
    /// `from`, else a prompt on the terminal (twice when `confirm`), else a
    /// line of standard input.
    pub fn read(&mut self, from: Fd, what: &str, confirm: bool) -> Result<Zeroizing<String>> {
        if let Some(fd) = from.1 {
            return self.line(from.0, fd, what);
        }
        if termios::isatty(std::io::stdin()) {
            let tty = open_tty(from.0, what)?;
            let first = prompt_on(&tty, from.0, what, &format!("{what}: "))?;
            if confirm && *prompt_on(&tty, from.0, what, &format!("{what} again: "))? != *first {
                return Err(usage(format!(
                    "the two entries of the {what} differ; run the command again"
                )));
            }
            return Ok(first);
        }
        self.line(from.0, 0, what)
    }

    /// A PIN, by [`SecretInput::read`].
    pub fn pin(&mut self, from: Fd, what: &str, confirm: bool) -> Result<Pin> {
        Ok(Pin::new(self.read(from, what, confirm)?))
    }

    /// A PUK, by [`SecretInput::read`].
    pub fn puk(&mut self, from: Fd, what: &str, confirm: bool) -> Result<Puk> {
        Ok(Puk::new(self.read(from, what, confirm)?))
    }

    fn line(&mut self, flag: &str, fd: i32, what: &str) -> Result<Zeroizing<String>> {
        if fd == 1 || fd == 2 || fd < 0 {
            return Err(usage(format!(
                "{flag} {fd}: cannot be read for the {what}; use 0 (stdin) or a descriptor of 3 or more"
            )));
        }
        let file = match self.fds.entry(fd) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // SAFETY: F_GETFD only reads the descriptor's flags; any int is safe.
                if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
                    return Err(usage(format!(
                        "{flag} {fd}: not an open file descriptor, so the {what} cannot be read from it; open it for reading (e.g. {fd}<FILE)"
                    )));
                }
                // SAFETY: the user named this open descriptor for us to
                // read; it is owned by this reader from now on and not used
                // elsewhere (stdin is only read through here once chosen).
                v.insert(unsafe { File::from_raw_fd(fd) })
            }
        };
        let line =
            read_line(file).with_context(|| format!("reading the {what} from descriptor {fd}"))?;
        match line {
            None => Err(usage(format!(
                "{flag} {fd}: no {what} (the input ended); write one line per secret"
            ))),
            Some(s) if s.is_empty() => Err(usage(format!(
                "{flag} {fd}: no {what} (an empty line); write the {what} on one line"
            ))),
            Some(s) => Ok(s),
        }
    }
}

fn usage(msg: String) -> anyhow::Error {
    Failure::Usage(msg).into()
}

/// A line without its `\n` / `\r\n`, or `None` at end of input before any byte.
fn read_line(r: &mut impl Read) -> Result<Option<Zeroizing<String>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_LINE));
    let mut byte = Zeroizing::new([0u8; 1]);
    let mut any = false;
    loop {
        match r.read(byte.as_mut()) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        any = true;
        if byte[0] == b'\n' {
            break;
        }
        if buf.len() == MAX_LINE {
            return Err(usage(format!(
                "the secret line is longer than {MAX_LINE} bytes; give one secret per line"
            )));
        }
        buf.push(byte[0]);
    }
    if !any {
        return Ok(None);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let text =
        std::str::from_utf8(&buf).map_err(|_| usage("the secret is not UTF-8 text".into()))?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}

fn open_tty(flag: &str, what: &str) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            usage(format!(
                "no terminal to ask for the {what}; pass it with {flag} N or on standard input"
            ))
        })
}

/// Write `text` on `tty` and read one line with echo off, restoring the
/// terminal afterwards. Refuses (reading nothing) when echo cannot be
/// turned off, or is still on after asking.
pub fn prompt_on(tty: &File, flag: &str, what: &str, text: &str) -> Result<Zeroizing<String>> {
    let refuse = || {
        usage(format!(
            "cannot turn off echo on this terminal, so the {what} is not asked for; pass it with {flag} N or on standard input"
        ))
    };
    let saved = termios::tcgetattr(tty).map_err(|_| refuse())?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    termios::tcsetattr(tty, OptionalActions::Flush, &quiet).map_err(|_| refuse())?;
    let restore = Restore { tty, saved };
    // tcsetattr succeeds if any change took; check that echo is off.
    let now = termios::tcgetattr(tty).map_err(|_| refuse())?;
    if now.local_modes.contains(LocalModes::ECHO) {
        return Err(refuse());
    }
    let mut out = tty;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    let mut input = tty;
    let line = read_line(&mut input).context("reading from the terminal")?;
    drop(restore);
    line.ok_or_else(|| usage(format!("the terminal closed before the {what} was typed")))
}

/// Puts the terminal settings back, on every path out of the prompt.
struct Restore<'a> {
    tty: &'a File,
    saved: termios::Termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty, OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    /// Attack: a "terminal" whose echo cannot be turned off (here a plain
    /// file) must make the prompt refuse, read nothing and write nothing,
    /// never fall back to an echoing read.
    #[test]
    fn prompt_refuses_when_echo_cannot_be_turned_off() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"24681357\n").unwrap();
        f.rewind().unwrap();
        let err = prompt_on(&f, "--pin-fd", "PIN", "PIN: ").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cannot turn off echo"), "{msg}");
        assert!(!msg.contains("2468"), "{msg}");
        assert!(matches!(
            err.downcast_ref::<Failure>(),
            Some(Failure::Usage(_))
        ));
        // Nothing was read from it or written to it.
        assert_eq!(f.stream_position().unwrap(), 0);
        assert_eq!(f.metadata().unwrap().len(), 9);
    }

    #[test]
    fn lines_are_read_one_at_a_time_without_reading_ahead() {
        let mut r: &[u8] = b"11223344\r\n55667788\nlast";
        assert_eq!(read_line(&mut r).unwrap().unwrap().as_str(), "11223344");
        assert_eq!(read_line(&mut r).unwrap().unwrap().as_str(), "55667788");
        assert_eq!(read_line(&mut r).unwrap().unwrap().as_str(), "last");
        assert!(read_line(&mut r).unwrap().is_none());
        let long = vec![b'1'; MAX_LINE + 1];
        assert!(read_line(&mut long.as_slice()).is_err());
        let mut bad: &[u8] = b"12\xff34\n";
        let e = read_line(&mut bad).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && !e.contains("12"), "{e}");
    }

    #[test]
    fn descriptors_that_cannot_hold_a_secret_are_refused() {
        let mut input = SecretInput::default();
        for fd in [1, 2, -1, 987] {
            let e = input
                .read(Fd("--pin-fd", Some(fd)), "PIN", false)
                .unwrap_err();
            assert!(
                matches!(e.downcast_ref::<Failure>(), Some(Failure::Usage(_))),
                "{e}"
            );
            assert!(
                e.to_string().starts_with(&format!("--pin-fd {fd}: ")),
                "{e}"
            );
        }
    }
}
