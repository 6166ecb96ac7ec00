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

/// A request body, up to `limit` bytes: 413 past it, 400 when unreadable
/// (a broken chunked encoding).
pub(super) async fn read(
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, super::refusal::Refusal> {
    use super::refusal::Refusal;
    use axum::http::StatusCode;
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::json_rpc(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!("the request body exceeds limits.max_payload_bytes ({limit} bytes)"),
        )),
        Err(e) => Err(Refusal::json_rpc(
            StatusCode::BAD_REQUEST,
            -32700,
            &format!("parse error: the request body could not be read ({e})"),
        )),
    }
}
