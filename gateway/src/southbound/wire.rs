//! gRPC over one HTTP/2 stream: the length-prefixed message framing, and
//! the status from the response headers or trailers. What `tonic::codec`
//! does for the call path, without a body type per layer (see
//! [`super::conn`] for why the call path has its own client).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tonic::{Code, Status};

/// One message framed for a request body: the uncompressed flag, the
/// length, the protobuf bytes.
pub(crate) fn frame(msg: &impl prost::Message, limit: usize) -> Result<Bytes, Status> {
    let len = msg.encoded_len();
    if len > limit {
        // The wording of tonic's, which the error table reads.
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {limit} bytes"
        )));
    }
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode(&mut buf)
        .map_err(|e| Status::internal(format!("failed to encode Protobuf message: {e}")))?;
    Ok(buf.freeze())
}

/// The messages of one response, read in the caller's task.
pub(crate) struct Streaming<M> {
    body: Option<h2::RecvStream>,
    buf: BytesMut,
    limit: usize,
    _msg: std::marker::PhantomData<fn() -> M>,
}

impl<M: prost::Message + Default> Streaming<M> {
    /// Checks the response head: a trailers-only answer (an error, or OK
    /// without messages) or a non-gRPC HTTP status ends the call here.
    pub(crate) fn new(resp: http::Response<h2::RecvStream>, limit: usize) -> Result<Self, Status> {
        let (head, body) = resp.into_parts();
        let ended = body.is_end_stream();
        if let Some(status) = Status::from_header_map(&head.headers) {
            if status.code() != Code::Ok {
                return Err(status);
            }
        } else if head.status != http::StatusCode::OK {
            return Err(from_http(head.status));
        }
        Ok(Self {
            body: (!ended).then_some(body),
            buf: BytesMut::new(),
            limit,
            _msg: std::marker::PhantomData,
        })
    }

    /// The next message; `None` after an OK status. A status other than
    /// OK in the trailers is the error.
    pub(crate) async fn message(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(frame) = self.next_frame()? {
                return M::decode(frame).map(Some).map_err(|e| {
                    Status::internal(format!("failed to decode Protobuf message: {e}"))
                });
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            match body.data().await {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    self.buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(Status::from(e)),
                None => {
                    let trailers = body.trailers().await.map_err(Status::from)?;
                    self.body = None;
                    if !self.buf.is_empty() {
                        return Err(Status::internal(
                            "the response ended inside a message (truncated)",
                        ));
                    }
                    return match trailers.as_ref().and_then(Status::from_header_map) {
                        Some(s) if s.code() == Code::Ok => Ok(None),
                        Some(s) => Err(s),
                        None => Err(Status::unknown(
                            "protocol error: missing grpc-status trailer",
                        )),
                    };
                }
            }
        }
    }

    /// Reads to the end of the stream, so it closes instead of being reset.
    pub(crate) async fn trailers(&mut self) {
        while let Ok(Some(_)) = self.message().await {}
    }

    fn next_frame(&mut self) -> Result<Option<Bytes>, Status> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let compressed = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.limit {
            return Err(Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {} bytes",
                self.limit
            )));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        if compressed != 0 {
            // No grpc-accept-encoding is sent, so none may be used.
            return Err(Status::internal(
                "the provider compressed a message although no encoding was offered",
            ));
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// The status for an HTTP answer without grpc-status (gRPC's mapping).
fn from_http(status: http::StatusCode) -> Status {
    let code = match status {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!("the provider answered HTTP {status} without a gRPC status"),
    )
}

/// `grpc-timeout`: at most 8 digits, so milliseconds, else seconds.
pub(crate) fn timeout_header(t: std::time::Duration) -> http::HeaderValue {
    let ms = t.as_millis();
    let v = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", t.as_secs().min(99_999_999))
    };
    http::HeaderValue::from_str(&v).expect("digits and a unit letter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_flag_length_and_message() {
        let msg = mcp_gateway_proto::provider::StreamRequest::default();
        let f = frame(&"ab".to_string(), 100).unwrap();
        assert_eq!(&f[..5], &[0, 0, 0, 0, 4]);
        assert_eq!(frame(&msg, 100).unwrap().as_ref(), &[0, 0, 0, 0, 0]);
        let e = frame(&"x".repeat(50), 10).unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange);
        assert!(
            e.message()
                .contains("found 52 bytes, the limit is: 10 bytes"),
            "{e}"
        );
    }

    #[test]
    fn timeouts_fit_eight_digits() {
        use std::time::Duration;
        assert_eq!(timeout_header(Duration::from_secs(30)), "30000m");
        assert_eq!(timeout_header(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn an_http_error_without_grpc_status_maps_like_grpc() {
        assert_eq!(
            from_http(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            from_http(http::StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
    }
}
