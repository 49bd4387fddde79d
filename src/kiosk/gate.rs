//! The kiosk's browser boundary (docs/kiosk.md, docs/threat-model.md
//! "Kiosk browser boundary"): who may drive the kiosk server.
//!
//! A browser has no Unix peer credentials, so the kiosk's own browser
//! session is recognised by what only it was given: the launch token in the
//! start URL, exchanged once for a session cookie. Every request is judged
//! here, before any route runs:
//!
//! 1. `Host` must be exactly `127.0.0.1:PORT` (a page of another name that
//!    resolves to 127.0.0.1 — DNS rebinding — is refused);
//! 2. `GET /?k=TOKEN` with the unused launch token is the exchange: the
//!    token is spent, the session cookie set (`HttpOnly; SameSite=Strict;
//!    Path=/`) and the browser sent to `/` so the token leaves the address
//!    bar and history; a spent or wrong token is refused;
//! 3. every other request must carry the session cookie;
//! 4. every request that may change state (any method but GET and HEAD)
//!    must also carry `Origin: http://127.0.0.1:PORT`, exactly: a form or
//!    `fetch` from a page of another origin is refused even if the browser
//!    were to attach the cookie.
//!
//! The decision is a pure function of the request head ([`Gate::judge`]);
//! the tokens are [`BearerToken`]s compared in constant time.

use std::sync::Mutex;

use axum::http::{HeaderMap, Method, header};

use crate::secret::BearerToken;

/// Name of the session cookie.
pub const COOKIE: &str = "keyward_kiosk";

/// What the gate decided about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The launch token was good and is now spent: set the cookie and
    /// redirect to `/`.
    Exchange,
    /// The kiosk's own session: let the route answer.
    Pass,
    /// Refused (403), with the one-line reason the page shows.
    Refuse(&'static str),
}

/// The launch token (until spent), the session token and the one origin
/// this server answers to.
#[derive(Debug)]
pub struct Gate {
    host: String,
    origin: String,
    launch: Mutex<Option<BearerToken>>,
    session: BearerToken,
}

impl Gate {
    /// A gate for a server listening on 127.0.0.1:`port`, with fresh tokens.
    pub fn new(port: u16) -> Gate {
        let host = format!("127.0.0.1:{port}");
        Gate {
            origin: format!("http://{host}"),
            host,
            launch: Mutex::new(Some(BearerToken::generate())),
            session: BearerToken::generate(),
        }
    }

    /// The origin (`http://127.0.0.1:PORT`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The start URL carrying the launch token, or `None` once spent.
    pub fn start_url(&self) -> Option<String> {
        let launch = self.launch.lock().unwrap_or_else(|p| p.into_inner());
        launch
            .as_ref()
            .map(|t| format!("{}/?k={}", self.origin, t.expose_secret()))
    }

    /// The `Set-Cookie` value that opens the session.
    pub fn set_cookie(&self) -> String {
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            self.session.expose_secret()
        )
    }

    /// Judge a request by its method, path, query and headers.
    pub fn judge(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Verdict {
        if header_is(headers, header::HOST, &self.host) != Some(true) {
            return Verdict::Refuse(
                "refused: this kiosk answers only at 127.0.0.1; open the start URL it printed",
            );
        }
        let safe = method == Method::GET || method == Method::HEAD;
        if !safe && header_is(headers, header::ORIGIN, &self.origin) != Some(true) {
            return Verdict::Refuse(
                "refused: the request did not come from the kiosk's own page (Origin)",
            );
        }
        if let Some(k) = query.and_then(launch_param) {
            if !(safe && path == "/") {
                return Verdict::Refuse("refused: the launch token is only accepted at /");
            }
            return self.exchange(k.as_bytes());
        }
        if self.has_session(headers) {
            Verdict::Pass
        } else {
            Verdict::Refuse(
                "refused: no kiosk session; open the start URL that `keyward kiosk` printed",
            )
        }
    }

    /// Spend the launch token if `presented` is it.
    fn exchange(&self, presented: &[u8]) -> Verdict {
        let mut launch = self.launch.lock().unwrap_or_else(|p| p.into_inner());
        match launch.as_ref() {
            Some(t) if t.matches(presented) => {
                *launch = None;
                Verdict::Exchange
            }
            Some(_) => Verdict::Refuse("refused: wrong launch token"),
            None => Verdict::Refuse(
                "refused: the start URL was already used; restart `keyward kiosk` for a new one",
            ),
        }
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        cookies(headers)
            .any(|(name, value)| name == COOKIE && self.session.matches(value.as_bytes()))
    }
}

/// Every `name=value` pair of every Cookie header (the browser may split
/// them across headers).
pub(super) fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

/// Whether the single header `name` equals `want`; `None` when absent or
/// repeated.
fn header_is(headers: &HeaderMap, name: header::HeaderName, want: &str) -> Option<bool> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    Some(first.as_bytes() == want.as_bytes())
}

/// The value of `k=` in a query string.
fn launch_param(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find_map(|(k, v)| (k == "k").then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn heads(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn launch(g: &Gate) -> String {
        let url = g.start_url().unwrap();
        url.split_once("?k=").unwrap().1.to_owned()
    }

    fn session(g: &Gate) -> String {
        let c = g.set_cookie();
        c.split(';').next().unwrap().to_owned()
    }

    /// Attack: replay the start URL after the kiosk's browser used it, and
    /// guess a token; both are refused and the guess does not spend it.
    #[test]
    fn the_launch_token_is_single_use_and_exact() {
        let g = Gate::new(8080);
        let host = heads(&[(header::HOST, "127.0.0.1:8080")]);
        let k = launch(&g);
        // The last character changed to another one (a fixed '0' would
        // be the token itself one time in sixteen).
        let last = if k.ends_with('0') { '1' } else { '0' };
        let wrong = format!("{}{last}", &k[..63]);
        assert_ne!(wrong, k);
        let q = format!("k={wrong}");
        assert_eq!(
            g.judge(&Method::GET, "/", Some(&q), &host),
            Verdict::Refuse("refused: wrong launch token")
        );
        let q = format!("x=1&k={k}");
        assert_eq!(
            g.judge(&Method::GET, "/", Some(&q), &host),
            Verdict::Exchange
        );
        assert!(g.start_url().is_none());
        assert!(matches!(
            g.judge(&Method::GET, "/", Some(&q), &host),
            Verdict::Refuse(m) if m.contains("already used")
        ));
    }

    /// Attack: no cookie, a wrong cookie, the launch token as cookie, the
    /// right cookie under another Host (DNS rebinding), and a POST from
    /// another origin or with no Origin; only the kiosk's session passes.
    #[test]
    fn only_the_session_from_the_kiosk_origin_passes() {
        let g = Gate::new(8080);
        let k = launch(&g);
        let good = session(&g);
        let host = (header::HOST, "127.0.0.1:8080");
        let cookie = |c: &str| (header::COOKIE, c.to_owned());
        let judge = |m: Method, h: &[(header::HeaderName, &str)]| {
            g.judge(&m, "/api/ticket", None, &heads(h))
        };
        let pass = Verdict::Pass;
        assert_ne!(judge(Method::GET, std::slice::from_ref(&host)), pass);
        assert_ne!(
            judge(
                Method::GET,
                &[host.clone(), (header::COOKIE, "keyward_kiosk=00")]
            ),
            pass
        );
        let as_cookie = format!("{COOKIE}={k}");
        assert_ne!(
            judge(Method::GET, &[host.clone(), (header::COOKIE, &as_cookie)]),
            pass
        );
        let (n, v) = cookie(&format!("a=b; {good}"));
        assert_eq!(judge(Method::GET, &[host.clone(), (n.clone(), &v)]), pass);
        assert_ne!(
            judge(
                Method::GET,
                &[(header::HOST, "evil.test:8080"), (n.clone(), &v)]
            ),
            pass
        );
        let origin = |o| (header::ORIGIN, o);
        assert_ne!(judge(Method::POST, &[host.clone(), (n.clone(), &v)]), pass);
        for other in [
            "http://evil.test",
            "http://127.0.0.1:8081",
            "null",
            "http://localhost:8080",
        ] {
            assert_ne!(
                judge(
                    Method::POST,
                    &[host.clone(), (n.clone(), &v), origin(other)]
                ),
                pass,
                "{other}"
            );
        }
        assert_ne!(
            judge(
                Method::POST,
                &[
                    host.clone(),
                    (n.clone(), &v),
                    origin("http://127.0.0.1:8080"),
                    origin("http://evil.test")
                ]
            ),
            pass
        );
        assert_eq!(
            judge(
                Method::POST,
                &[host, (n, &v), origin("http://127.0.0.1:8080")]
            ),
            pass
        );
    }

    /// The cookie the exchange sets is the browser-only, same-site kind.
    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let g = Gate::new(1);
        let c = g.set_cookie();
        assert!(c.ends_with("; HttpOnly; SameSite=Strict; Path=/"), "{c}");
        assert!(!c.contains(&launch(&g)));
    }
}
