//! stdin that says when it reaches EOF, so open subscriptions can end with
//! the session instead of holding the process up.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, ReadBuf};
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
