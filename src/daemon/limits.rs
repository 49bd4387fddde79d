//! Time limits on API connections: a peer may not hold a connection (and
//! the task serving it) open without using it.
//!
//! - **Header read timeout**: the request line and headers must arrive
//!   within [`Timeouts::header`] of the connection's start, or of the first
//!   byte of the next request (hyper's `header_read_timeout`); a peer that
//!   sends half a header is disconnected.
//! - **Idle timeout**: a connection on which no byte moved, in either
//!   direction, for [`Timeouts::idle`] is closed. An event stream stays
//!   open: its keep-alive comments come more often than the idle timeout
//!   ([`Timeouts::keepalive`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The limits of one daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for a complete request head.
    pub header: Duration,
    /// Longest time without a byte in either direction.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// The event-stream keep-alive interval: at most 15 s, and a third of
    /// the idle timeout, so a quiet stream is never taken for an idle one.
    pub fn keepalive(&self) -> Duration {
        (self.idle / 3).clamp(Duration::from_millis(100), Duration::from_secs(15))
    }
}

/// When a connection last moved a byte.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once nothing moved for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A stream that records its activity.
pub struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Activity) -> Watched<S> {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn idle_counts_from_the_last_byte_either_way() {
        let idle = Duration::from_millis(300);
        let (a, mut b) = tokio::io::duplex(64);
        let act = Activity::new();
        let mut w = Watched::new(a, act.clone());
        let mut one = [0u8; 1];
        for step in 0..2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if step == 0 {
                w.write_all(b"x").await.unwrap();
                b.read_exact(&mut one).await.unwrap();
            } else {
                b.write_all(b"y").await.unwrap();
                w.read_exact(&mut one).await.unwrap();
            }
            let moved = Instant::now();
            act.idle_for(idle).await;
            // Not before `idle` after the byte (a margin for the clock's
            // millisecond rounding), and not long after.
            let waited = moved.elapsed();
            assert!(waited + Duration::from_millis(2) >= idle, "{waited:?}");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        }
    }

    #[test]
    fn keepalive_is_shorter_than_idle() {
        let t = Timeouts::default();
        assert_eq!(t.keepalive(), Duration::from_secs(15));
        let t = Timeouts {
            header: Duration::from_secs(1),
            idle: Duration::from_secs(2),
        };
        assert!(t.keepalive() < t.idle);
    }
}
