//! Reading PINs, PUKs and management keys: from a file descriptor
//! (`--pin-fd N`), from a terminal prompt without echo, or line by line
//! from standard input when it is not a terminal. Never from argv.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// Where secrets come from, keeping one buffered reader per descriptor so
/// that two secrets can come from one fd, one line each.
#[derive(Default)]
pub struct SecretInput {
    readers: HashMap<i32, BufReader<File>>,
}

impl SecretInput {
    /// One secret: line from `fd`, else a prompt on the terminal, else a
    /// line of standard input. `confirm` asks twice at a prompt.
    pub fn read(
        &mut self,
        fd: Option<i32>,
        what: &str,
        confirm: bool,
    ) -> Result<Zeroizing<String>> {
        if let Some(fd) = fd {
            return self.line(fd, what);
        }
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(0) } == 1 {
            let first = prompt(&format!("{what}: "))?;
            if confirm && *prompt(&format!("{what} again: "))? != *first {
                bail!("the two entries of the {what} differ; run the command again");
            }
            return Ok(first);
        }
        self.line(0, what)
    }

    fn line(&mut self, fd: i32, what: &str) -> Result<Zeroizing<String>> {
        if fd == 1 || fd == 2 || fd < 0 {
            bail!(
                "--…-fd {fd} cannot be read for the {what}: use 0 (stdin) or a descriptor of 3 or more"
            );
        }
        let reader = match self.readers.entry(fd) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // SAFETY: the user named this descriptor for us to read; it
                // is owned by this reader from now on and not used elsewhere
                // (stdin is only read through here once chosen).
                let f = unsafe { File::from_raw_fd(fd) };
                v.insert(BufReader::new(f))
            }
        };
        let mut s = Zeroizing::new(String::new());
        let n = reader
            .read_line(&mut s)
            .with_context(|| format!("reading the {what} from descriptor {fd}"))?;
        if n == 0 {
            bail!("descriptor {fd} ended before the {what} was read; write one line per secret");
        }
        let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string());
        Ok(trimmed)
    }
}

/// Prompt on /dev/tty with echo off, restoring the terminal afterwards.
fn prompt(text: &str) -> Result<Zeroizing<String>> {
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to prompt on; pass the secret with --…-fd N or on stdin")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal; saved is a valid termios.
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        bail!("cannot read terminal settings to hide the input");
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: as above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut out = &tty;
    let _ = out.write_all(text.as_bytes());
    let mut s = Zeroizing::new(String::new());
    let r = BufReader::new(&tty).read_line(&mut s);
    // SAFETY: restore what tcgetattr gave.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    r.context("reading from the terminal")?;
    Ok(Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string()))
}
