//! A response body that holds a guard until it is fully sent or dropped.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

pub(crate) struct WithGuard<G> {
    body: axum::body::Body,
    _guard: G,
}

impl<G> WithGuard<G> {
    pub(crate) fn new(body: axum::body::Body, guard: G) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl<G: Unpin> http_body::Body for WithGuard<G> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
