//! The stdio transport's two ends, each saying when it is gone: stdin at
//! EOF (open subscriptions then end with the session instead of holding the
//! process up), stdout once a write fails (the parent stopped reading: no
//! answer can reach it, so the session ends and in-flight calls are
//! cancelled instead of running on).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

pub struct EofSignal<R> {
    inner: R,
    eof: CancellationToken,
}

impl<R> EofSignal<R> {
    pub fn new(inner: R, eof: CancellationToken) -> Self {
        Self { inner, eof }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let at_eof = matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() == before;
        if at_eof || matches!(poll, Poll::Ready(Err(_))) {
            self.eof.cancel();
        }
        poll
    }
}

pub struct ClosedSignal<W> {
    inner: W,
    closed: CancellationToken,
}

impl<W> ClosedSignal<W> {
    pub fn new(inner: W, closed: CancellationToken) -> Self {
        Self { inner, closed }
    }

    fn note<T>(&self, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &poll
            && !self.closed.is_cancelled()
        {
            tracing::warn!(error = %e, "stdout is closed; ending the session");
            self.closed.cancel();
        }
        poll
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ClosedSignal<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
