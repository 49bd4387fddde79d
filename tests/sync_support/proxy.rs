//! A fault-injecting HTTP/1.1 proxy on loopback, between a station and the
//! registry. Each request takes the next scripted fault (or passes):
//! an error status with Retry-After, a connection reset after the registry
//! committed (the station never sees the ack), a delay before forwarding
//! (the station times out while the registry still commits), or holding the
//! ack back (to kill the station mid-batch).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Fault {
    Pass,
    /// Answer this status without forwarding, with `Retry-After` seconds.
    Status(u16, Option<u32>),
    /// Forward, read the registry's answer, then reset the connection.
    ResetAfterCommit,
    /// Wait, then forward (and answer if the client still listens).
    Delay(Duration),
    /// Forward, then hold the answer this long.
    HoldAfterCommit(Duration),
    /// Hold the request this long before forwarding.
    HoldBeforeForward(Duration),
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub faults: Arc<Mutex<VecDeque<Fault>>>,
    /// Requests forwarded to the registry.
    pub forwarded: Arc<AtomicUsize>,
    /// Requests received.
    pub received: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr, faults: Vec<Fault>) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = Proxy {
            addr: l.local_addr().unwrap(),
            faults: Arc::new(Mutex::new(faults.into())),
            forwarded: Arc::default(),
            received: Arc::default(),
            stop: Arc::default(),
        };
        let (faults, fwd, rcv, stop) = (
            p.faults.clone(),
            p.forwarded.clone(),
            p.received.clone(),
            p.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (faults, fwd, rcv) = (faults.clone(), fwd.clone(), rcv.clone());
                std::thread::spawn(move || serve(conn, upstream, &faults, &fwd, &rcv));
            }
        });
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, f: Fault) {
        self.faults.lock().unwrap().push_back(f);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Read one HTTP/1.1 message (head and Content-Length body).
pub fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            let total = end + 4 + len;
            while buf.len() < total {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn forward(upstream: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    let mut u = TcpStream::connect(upstream).ok()?;
    u.write_all(req).ok()?;
    read_message(&mut u)
}

fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(s);
}

fn serve(
    mut c: TcpStream,
    upstream: SocketAddr,
    faults: &Mutex<VecDeque<Fault>>,
    fwd: &AtomicUsize,
    rcv: &AtomicUsize,
) {
    while let Some(req) = read_message(&mut c) {
        rcv.fetch_add(1, Ordering::SeqCst);
        let fault = faults.lock().unwrap().pop_front().unwrap_or(Fault::Pass);
        let answer = match fault {
            Fault::Status(code, ra) => {
                let ra = ra.map_or_else(String::new, |s| format!("retry-after: {s}\r\n"));
                let _ = c.write_all(
                    format!("HTTP/1.1 {code} Injected\r\ncontent-length: 0\r\n{ra}\r\n").as_bytes(),
                );
                continue;
            }
            Fault::HoldBeforeForward(d) | Fault::Delay(d) => {
                std::thread::sleep(d);
                forward(upstream, &req)
            }
            Fault::Pass | Fault::ResetAfterCommit | Fault::HoldAfterCommit(_) => {
                forward(upstream, &req)
            }
        };
        fwd.fetch_add(1, Ordering::SeqCst);
        let Some(answer) = answer else { return };
        match fault {
            Fault::ResetAfterCommit => return reset(c),
            Fault::HoldAfterCommit(d) => std::thread::sleep(d),
            _ => {}
        }
        if c.write_all(&answer).is_err() {
            return;
        }
    }
}
