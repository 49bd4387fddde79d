//! The CLI's side of the local API: a small blocking HTTP/1.1 client over
//! the Unix socket, one connection per request (`Connection: close`).
//!
//! Hand-written on purpose: the API is local, HTTP/1.1 only, and the CLI
//! has no async runtime; a client crate would bring hyper's client and a
//! tokio runtime into every `keyward` command for ~150 lines of framing.
//! Response heads are parsed by `httparse` (already in the tree via hyper).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

/// Largest response accepted outside the event stream.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the keyward daemon at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the keyward daemon at {socket} refused this user: {message}; ask an administrator to add you to the keyward group, or set KEYWARD_NO_DAEMON=1 to work without the daemon"
    )]
    Forbidden { socket: PathBuf, message: String },
    #[error("the keyward daemon answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("talking to the keyward daemon failed")]
    Io(#[from] std::io::Error),
    #[error("the keyward daemon sent a malformed response: {0}")]
    Protocol(String),
}

/// A daemon found on a socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Option<Duration>,
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The socket the CLI looks for: `$KEYWARD_SOCKET`, else the default; `None`
/// when `KEYWARD_NO_DAEMON` is set (work standalone).
pub fn socket_path() -> Option<PathBuf> {
    if std::env::var_os("KEYWARD_NO_DAEMON").is_some_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    Some(
        std::env::var_os("KEYWARD_SOCKET")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(super::DEFAULT_SOCKET), PathBuf::from),
    )
}

/// A client for the daemon on `socket` if one is there: the socket accepts
/// a connection, or exists but refuses this user (so that the refusal is
/// reported rather than silently bypassed). `None` means: work standalone.
pub fn connect(socket: &Path) -> Option<Client> {
    match UnixStream::connect(socket) {
        Ok(_) => Some(Client::new(socket)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(Client::new(socket)),
        Err(_) => None,
    }
}

/// [`connect`] on [`socket_path`].
pub fn connect_default() -> Option<Client> {
    socket_path().and_then(|p| connect(&p))
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
            timeout: Some(Duration::from_secs(30)),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Read timeout for responses (`None`: wait forever).
    pub fn with_timeout(mut self, t: Option<Duration>) -> Client {
        self.timeout = t;
        self
    }

    fn open(&self) -> Result<UnixStream, ClientError> {
        let s = UnixStream::connect(&self.socket).map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::Forbidden {
                    socket: self.socket.clone(),
                    message: format!(
                        "no permission to open the socket ({source}): only root and members of the daemon's group may"
                    ),
                }
            } else {
                ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                }
            }
        })?;
        s.set_read_timeout(self.timeout)?;
        Ok(s)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<BufReader<UnixStream>, ClientError> {
        let mut s = self.open()?;
        // The body may hold a PIN: build the request in a wiped buffer.
        let mut req = Zeroizing::new(Vec::with_capacity(256 + body.map_or(0, <[u8]>::len)));
        write!(
            req,
            "{method} {path} HTTP/1.1\r\nHost: keyward\r\nConnection: close\r\n"
        )?;
        if let Some(b) = body {
            write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )?;
        }
        req.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            req.extend_from_slice(b);
        }
        s.write_all(&req)?;
        Ok(BufReader::new(s))
    }

    /// Send a request and read the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let mut r = self.send(method, path, body)?;
        let head = read_head(&mut r)?;
        let body = if head.chunked {
            let mut v = Vec::new();
            Chunked::new(r)
                .take(MAX_RESPONSE as u64)
                .read_to_end(&mut v)?;
            v
        } else if let Some(n) = head.length {
            if n > MAX_RESPONSE {
                return Err(ClientError::Protocol(format!("{n}-byte response")));
            }
            let mut v = vec![0; n];
            r.read_exact(&mut v)?;
            v
        } else {
            let mut v = Vec::new();
            r.take(MAX_RESPONSE as u64).read_to_end(&mut v)?;
            v
        };
        Ok(Response {
            status: head.status,
            content_type: head.content_type,
            body,
        })
    }

    /// A JSON request whose success is a 2xx with a JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Value, ClientError> {
        let r = self.request(method, path, body)?;
        self.json(r)
    }

    fn json(&self, r: Response) -> Result<Value, ClientError> {
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
            ClientError::Protocol(format!(
                "status {} with a body that is not JSON: {e}",
                r.status
            ))
        })?;
        if (200..300).contains(&r.status) {
            return Ok(v);
        }
        let code = v["error"]["code"].as_str().unwrap_or("unknown").to_string();
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or("(no message)")
            .to_string();
        if r.status == 403 {
            return Err(ClientError::Forbidden {
                socket: self.socket.clone(),
                message,
            });
        }
        Err(ClientError::Api {
            status: r.status,
            code,
            message,
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None)
    }

    pub fn health(&self) -> Result<Value, ClientError> {
        self.get("/v1/health")
    }

    pub fn devices(&self) -> Result<Value, ClientError> {
        self.get("/v1/devices")
    }

    /// Open the event stream (`GET /v1/events`).
    pub fn events(&self) -> Result<Events, ClientError> {
        let mut r = self.send("GET", "/v1/events", None)?;
        let head = read_head(&mut r)?;
        if head.status != 200 {
            let mut v = Vec::new();
            if let Some(n) = head.length {
                v.resize(n.min(MAX_RESPONSE), 0);
                r.read_exact(&mut v)?;
            }
            return Err(self
                .json(Response {
                    status: head.status,
                    content_type: head.content_type,
                    body: v,
                })
                .err()
                .unwrap_or_else(|| ClientError::Protocol("event stream refused".into())));
        }
        if !head.chunked {
            return Err(ClientError::Protocol(
                "the event stream is not chunked".into(),
            ));
        }
        Ok(Events {
            lines: BufReader::new(Chunked::new(r)),
        })
    }

    /// Start a job (`POST /v1/enroll` or `/v1/replace`, body as in
    /// docs/api.md; it holds the PIN and is wiped by the caller) and follow
    /// it on the event stream until it ends; `progress` sees each event of
    /// the job. Returns the final job document.
    pub fn run_job(
        &self,
        path: &str,
        body: &[u8],
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Value, ClientError> {
        // Listen first, so no event of the job is missed.
        let events = self.clone().with_timeout(None).events()?;
        let started = self.call("POST", path, Some(body))?;
        let job = started["job"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("no job id in the enroll answer".into()))?
            .to_string();
        for ev in events {
            let ev = ev?;
            if ev.data["job"].as_str() != Some(job.as_str()) {
                continue;
            }
            progress(&ev);
            if ev.event == "job" && ev.data["state"].as_str().is_some_and(|s| s != "running") {
                return self.get(&format!("/v1/jobs/{job}"));
            }
        }
        Err(ClientError::Protocol(format!(
            "the event stream ended before job {job} did (daemon stopping?)"
        )))
    }
}

struct Head {
    status: u16,
    content_type: Option<String>,
    length: Option<usize>,
    chunked: bool,
}

/// Read and parse the response head (up to the blank line).
fn read_head(r: &mut impl BufRead) -> Result<Head, ClientError> {
    let mut raw = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the connection closed before a response".into(),
            ));
        }
        if raw.ends_with(b"\r\n\r\n") {
            break;
        }
        if raw.len() > 64 * 1024 {
            return Err(ClientError::Protocol("response head over 64 KiB".into()));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&raw)
        .map_err(|e| ClientError::Protocol(format!("response head: {e}")))?;
    let status = resp
        .code
        .ok_or_else(|| ClientError::Protocol("no status code".into()))?;
    let mut head = Head {
        status,
        content_type: None,
        length: None,
        chunked: false,
    };
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(v);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            head.length = Some(
                v.parse()
                    .map_err(|_| ClientError::Protocol(format!("content-length {v:?}")))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.eq_ignore_ascii_case("chunked");
        }
    }
    Ok(head)
}

/// A `Transfer-Encoding: chunked` body as a plain reader (RFC 9112 §7.1;
/// chunk extensions and trailers are skipped).
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }

    fn next_size(&mut self) -> std::io::Result<usize> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        let hex = line.trim_end().split(';').next().unwrap_or("").trim();
        usize::from_str_radix(hex, 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad chunk size line {line:?}"),
            )
        })
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            self.left = self.next_size()?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<u64>,
    /// `snapshot`, `device`, `job`, `progress`, `lagged` or `shutdown`.
    pub event: String,
    pub data: Value,
}

/// The event stream, one [`Event`] per item; ends when the daemon closes it.
pub struct Events {
    lines: BufReader<Chunked<BufReader<UnixStream>>>,
}

impl Iterator for Events {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut ev = Event {
            id: None,
            event: "message".into(),
            data: Value::Null,
        };
        let mut data = String::new();
        loop {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue; // a keep-alive comment block
                }
                return Some(
                    serde_json::from_str(&data)
                        .map(|d| {
                            ev.data = d;
                            ev
                        })
                        .map_err(|e| ClientError::Protocol(format!("event data: {e}"))),
                );
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => ev.id = value.parse().ok(),
                "event" => ev.event = value.to_string(),
                "data" => data.push_str(value),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked::new(&raw[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        let bad = b"zz\r\nhello\r\n";
        let e = Chunked::new(&bad[..]).read_to_string(&mut out).unwrap_err();
        assert!(e.to_string().contains("bad chunk size"), "{e}");
    }

    #[test]
    fn heads_parse_and_garbage_is_a_protocol_error() {
        let mut r = &b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"[..];
        let h = read_head(&mut r).unwrap();
        assert_eq!((h.status, h.length, h.chunked), (403, Some(2), false));
        let mut g = &b"SSH-2.0-OpenSSH\r\n\r\n"[..];
        assert!(matches!(read_head(&mut g), Err(ClientError::Protocol(_))));
        let mut empty = &b""[..];
        assert!(
            matches!(read_head(&mut empty), Err(ClientError::Protocol(m)) if m.contains("closed"))
        );
    }

    #[test]
    fn no_daemon_means_standalone() {
        assert!(connect(Path::new("/nonexistent/keyward.sock")).is_none());
    }
}
