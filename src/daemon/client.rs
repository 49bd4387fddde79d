//! The CLI's side of the local API: a blocking client over the Unix
//! socket on hyper's HTTP/1.1 client (`hyper::client::conn::http1` over
//! `tokio::net::UnixStream`), one connection per request. Each call runs on
//! a small current-thread runtime of its own, so a `keyward` command that
//! never talks to a daemon starts no runtime.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
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
    match std::os::unix::net::UnixStream::connect(socket) {
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

    fn forbidden(&self, source: &std::io::Error) -> ClientError {
        ClientError::Forbidden {
            socket: self.socket.clone(),
            message: format!(
                "no permission to open the socket ({source}): only root and members of the daemon's group may"
            ),
        }
    }

    /// Connect, send the request and return its response head and body
    /// stream; the connection is driven by a task on `rt`.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::PermissionDenied {
                    self.forbidden(&source)
                } else {
                    ClientError::Connect {
                        socket: self.socket.clone(),
                        source,
                    }
                }
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        tokio::spawn(async move {
            // The connection ends with the response (or the event stream).
            let _ = conn.await;
        });
        // The body may hold a PIN: hyper gets it as bytes whose owner is a
        // wiped buffer, so the copy is zeroized when hyper drops it.
        let bytes = body.map_or_else(Bytes::new, |b| {
            Bytes::from_owner(Zeroizing::new(b.to_vec()))
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "keyward");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Protocol(format!("building the request: {e}")))?;
        sender.send_request(req).await.map_err(http_error)
    }

    /// Run `fut` to its end on a runtime of its own, within the timeout.
    fn block<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let rt = runtime()?;
        let timeout = self.timeout;
        rt.block_on(async move {
            match timeout {
                Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                    ClientError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the keyward daemon did not answer within {} s", t.as_secs()),
                    ))
                })?,
                None => fut.await,
            }
        })
    }

    /// Send a request and read the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        self.block(async {
            let r = self.send(method, path, body).await?;
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(r.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading the response: {e}")))?
                .to_bytes()
                .to_vec();
            Ok(Response {
                status,
                content_type,
                body,
            })
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
        let rt = runtime()?;
        let r = rt.block_on(self.send("GET", "/v1/events", None))?;
        if r.status() != StatusCode::OK {
            let status = r.status().as_u16();
            let body = rt
                .block_on(Limited::new(r.into_body(), MAX_RESPONSE).collect())
                .map_err(|e| ClientError::Protocol(format!("reading the response: {e}")))?
                .to_bytes()
                .to_vec();
            return Err(self
                .json(Response {
                    status,
                    content_type: None,
                    body,
                })
                .err()
                .unwrap_or_else(|| ClientError::Protocol("event stream refused".into())));
        }
        Ok(Events {
            rt,
            body: r.into_body(),
            buf: Vec::new(),
            timeout: self.timeout,
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

/// A current-thread runtime for one call (or one event stream).
fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Io)
}

fn http_error(e: hyper::Error) -> ClientError {
    ClientError::Protocol(crate::detect::error_chain(&e))
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
    rt: tokio::runtime::Runtime,
    body: Incoming,
    /// Bytes received and not yet consumed as lines.
    buf: Vec<u8>,
    timeout: Option<Duration>,
}

impl Events {
    /// The next line of the stream (without its end), `None` at its end.
    fn read_line(&mut self) -> Option<Result<String, ClientError>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(Ok(String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string()));
            }
            if self.buf.len() > MAX_RESPONSE {
                return Some(Err(ClientError::Protocol("event line too long".into())));
            }
            let timeout = self.timeout;
            let body = &mut self.body;
            let frame = self.rt.block_on(async {
                match timeout {
                    Some(t) => tokio::time::timeout(t, body.frame()).await.ok(),
                    None => Some(body.frame().await),
                }
            });
            match frame {
                None => {
                    return Some(Err(ClientError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no event from the keyward daemon in time",
                    ))));
                }
                Some(None) => return None,
                Some(Some(Err(e))) => return Some(Err(http_error(e))),
                Some(Some(Ok(f))) => {
                    if let Some(d) = f.data_ref() {
                        self.buf.extend_from_slice(d);
                    }
                }
            }
        }
    }
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
            let line = match self.read_line()? {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
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
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
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
    fn no_daemon_means_standalone() {
        assert!(connect(Path::new("/nonexistent/keyward.sock")).is_none());
    }
}
