//! Attach a virtual card to pcscd through the vsmartcard `vpcd` driver.
//!
//! The card side (vicc) connects to the driver's TCP port (35963 is reader
//! "Virtual PCD 00 00"). Every message in either direction is a 2-byte
//! big-endian length and a payload. One-byte payloads from the driver are
//! control codes: 0 power off, 1 power on, 2 reset, 4 get ATR (answered with
//! the ATR); longer ones are command APDUs, answered with the response APDU.
//! Closing the connection removes the card from the reader.
//!
//! Latency: the driver writes the length and the payload separately. With
//! Nagle on its side and delayed ACK on ours every round trip costs ~44 ms;
//! `TCP_NODELAY` plus re-arming `TCP_QUICKACK` before every read brings it to
//! ~0.14 ms (DESIGN.md, measured through pcscd).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::card::{Interrupt, VirtualCard};
use super::person::{Person, PlainPresence};

const CTRL_POWER_OFF: u8 = 0x00;
const CTRL_POWER_ON: u8 = 0x01;
const CTRL_RESET: u8 = 0x02;
const CTRL_GET_ATR: u8 = 0x04;

/// Errors of the vpcd connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VpcdError {
    #[error("cannot resolve vpcd address {addr:?}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("vpcd address {0:?} resolves to nothing")]
    NoAddress(String),
    #[error("vpcd connection failed")]
    Io(#[from] io::Error),
}

/// Why one connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The driver closed the connection (pcscd stopped or restarted).
    DriverClosed,
    /// The simulator removed the card (the disconnect-mid-command fault).
    CardRemoved,
    /// [`Shutdown::stop`] was called.
    Shutdown,
}

/// A flag another thread sets to make [`serve`] return.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Hooks around each command, for persistence.
pub trait Observer {
    /// Called after every command APDU the card answered.
    fn after_command(&mut self, card: &VirtualCard);
}

impl Observer for () {
    fn after_command(&mut self, _: &VirtualCard) {}
}

pub fn resolve(addr: &str) -> Result<SocketAddr, VpcdError> {
    addr.to_socket_addrs()
        .map_err(|source| VpcdError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| VpcdError::NoAddress(addr.to_string()))
}

/// Keep the card in the reader until shut down: connect, serve, and
/// reconnect whenever the connection ends (pcscd restarted, or the card was
/// pulled by a fault and is "re-inserted" after `reinsert_after`).
pub fn serve(
    addr: SocketAddr,
    card: &mut VirtualCard,
    person: Person,
    observer: &mut dyn Observer,
    shutdown: &Shutdown,
) -> Result<(), VpcdError> {
    let reinsert_after = Duration::from_millis(500);
    while !shutdown.stopped() {
        let stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "vpcd not reachable yet; retrying");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        tracing::info!(%addr, "card inserted into vpcd reader");
        card.power_cycle();
        match serve_connection(stream, card, person, observer, shutdown) {
            Ok(Ended::Shutdown) => break,
            Ok(how) => tracing::info!(?how, "card left the reader"),
            Err(e) => tracing::warn!(error = %e, "vpcd connection failed"),
        }
        std::thread::sleep(reinsert_after);
    }
    Ok(())
}

/// Serve one connection until it ends.
pub fn serve_connection(
    mut stream: TcpStream,
    card: &mut VirtualCard,
    person: Person,
    observer: &mut dyn Observer,
    shutdown: &Shutdown,
) -> Result<Ended, VpcdError> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut presence = PlainPresence(person);
    loop {
        let msg = match read_message(&mut stream, shutdown)? {
            Some(m) => m,
            None if shutdown.stopped() => return Ok(Ended::Shutdown),
            None => return Ok(Ended::DriverClosed),
        };
        tracing::trace!(
            len = msg.len(),
            first = msg.first().copied(),
            "vpcd message"
        );
        let reply = match msg.as_slice() {
            [CTRL_POWER_OFF] => {
                card.power_off();
                continue;
            }
            [CTRL_POWER_ON] => {
                card.power_on();
                continue;
            }
            [CTRL_RESET] => {
                card.power_cycle();
                continue;
            }
            [CTRL_GET_ATR] => card.atr().to_vec(),
            [other] => {
                tracing::debug!(code = other, "unknown vpcd control code ignored");
                continue;
            }
            apdu => match card.transmit(apdu, &mut presence) {
                Ok(r) => {
                    observer.after_command(card);
                    r
                }
                Err(Interrupt::Disconnect) => return Ok(Ended::CardRemoved),
                Err(Interrupt::Stall) => return stall(&mut stream, shutdown),
            },
        };
        write_message(&mut stream, &reply)?;
    }
}

/// Never answer: hold the connection (the host's transmit hangs until its
/// deadline) until the driver closes it or we are shut down.
fn stall(stream: &mut TcpStream, shutdown: &Shutdown) -> Result<Ended, VpcdError> {
    tracing::info!("stall fault: the card stops answering");
    let mut sink = [0u8; 512];
    loop {
        if shutdown.stopped() {
            return Ok(Ended::Shutdown);
        }
        match stream.read(&mut sink) {
            Ok(0) => return Ok(Ended::DriverClosed),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Re-arm TCP_QUICKACK: Linux clears it after a while, and without it the
/// driver's split writes meet delayed ACKs.
fn quickack(stream: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on our own socket with a pointer to a live c_int and
    // its exact size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Read one length-prefixed message; `None` on orderly close or shutdown.
fn read_message(stream: &mut TcpStream, shutdown: &Shutdown) -> Result<Option<Vec<u8>>, VpcdError> {
    let mut len = [0u8; 2];
    if !read_exact_or_close(stream, &mut len, shutdown)? {
        return Ok(None);
    }
    // The 2-byte length bounds every message to 64 KiB.
    let n = u16::from_be_bytes(len) as usize;
    let mut buf = vec![0u8; n];
    if !read_exact_or_close(stream, &mut buf, shutdown)? {
        return Ok(None);
    }
    Ok(Some(buf))
}

fn read_exact_or_close(
    stream: &mut TcpStream,
    buf: &mut [u8],
    shutdown: &Shutdown,
) -> Result<bool, VpcdError> {
    let mut got = 0;
    while got < buf.len() {
        quickack(stream);
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(k) => got += k,
            Err(e) if is_timeout(&e) => {
                if shutdown.stopped() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn write_message(stream: &mut TcpStream, payload: &[u8]) -> Result<(), VpcdError> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::apdu::{Command, Response, sw};
    use crate::sim::card::{Applet, CardEnv};
    use std::net::TcpListener;

    struct Echo;
    impl Applet for Echo {
        fn aid(&self) -> &'static [u8] {
            &[0xA0, 0, 0, 0, 1]
        }
        fn select(&mut self) -> Response {
            Response::status(sw::OK)
        }
        fn process(&mut self, cmd: &Command, _: &mut CardEnv<'_>) -> Result<Response, Interrupt> {
            match cmd.ins {
                0x0D => Err(Interrupt::Disconnect),
                _ => Ok(Response::ok(cmd.data.clone())),
            }
        }
        fn state_name(&self) -> &'static str {
            "echo"
        }
    }

    fn frame(p: &[u8]) -> Vec<u8> {
        [&(p.len() as u16).to_be_bytes()[..], p].concat()
    }

    /// Plays the driver's side over loopback, byte for byte.
    #[test]
    fn speaks_the_vpcd_wire_format() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::default();
        let sd = shutdown.clone();
        let t = std::thread::spawn(move || {
            let mut card = VirtualCard::new(vec![Box::new(Echo)]);
            let stream = TcpStream::connect(addr).unwrap();
            serve_connection(stream, &mut card, Person::Immediate, &mut (), &sd).unwrap()
        });
        let (mut drv, _) = listener.accept().unwrap();
        let rd = |drv: &mut TcpStream| {
            let mut l = [0u8; 2];
            drv.read_exact(&mut l).unwrap();
            let mut b = vec![0u8; u16::from_be_bytes(l) as usize];
            drv.read_exact(&mut b).unwrap();
            b
        };
        drv.write_all(&frame(&[CTRL_POWER_ON])).unwrap();
        drv.write_all(&frame(&[CTRL_GET_ATR])).unwrap();
        assert_eq!(rd(&mut drv), crate::sim::card::ATR);
        // Length and payload in separate writes, as the driver does.
        let select = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0, 0, 0, 1];
        drv.write_all(&(select.len() as u16).to_be_bytes()).unwrap();
        drv.write_all(&select).unwrap();
        assert_eq!(rd(&mut drv), [0x90, 0x00]);
        drv.write_all(&frame(&[0x00, 0x01, 0x00, 0x00, 0x02, 0xCA, 0xFE]))
            .unwrap();
        assert_eq!(rd(&mut drv), [0xCA, 0xFE, 0x90, 0x00]);
        // The disconnect fault closes the connection: the card is removed.
        drv.write_all(&frame(&[0x00, 0x0D, 0x00, 0x00])).unwrap();
        assert_eq!(t.join().unwrap(), Ended::CardRemoved);
        let mut rest = Vec::new();
        assert_eq!(drv.read_to_end(&mut rest).unwrap(), 0);
    }

    #[test]
    fn driver_close_and_shutdown_end_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::default();
        let sd = shutdown.clone();
        let t = std::thread::spawn(move || {
            let mut card = VirtualCard::new(vec![Box::new(Echo)]);
            let stream = TcpStream::connect(addr).unwrap();
            serve_connection(stream, &mut card, Person::Immediate, &mut (), &sd).unwrap()
        });
        let (drv, _) = listener.accept().unwrap();
        drop(drv);
        assert_eq!(t.join().unwrap(), Ended::DriverClosed);

        let sd = shutdown.clone();
        let t = std::thread::spawn(move || {
            let mut card = VirtualCard::new(vec![Box::new(Echo)]);
            let stream = TcpStream::connect(addr).unwrap();
            serve_connection(stream, &mut card, Person::Immediate, &mut (), &sd).unwrap()
        });
        let (_drv, _) = listener.accept().unwrap();
        shutdown.stop();
        assert_eq!(t.join().unwrap(), Ended::Shutdown);
    }
}
