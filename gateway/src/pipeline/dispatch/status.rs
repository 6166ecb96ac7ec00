//! A failed provider call's gRPC status as the gateway's error: lost
//! connections, deadlines and oversized answers are told apart from what
//! the provider said.

use super::Dispatcher;
use crate::{pipeline::error::GatewayError, southbound::Upstream};

impl Dispatcher {
    pub(super) fn status_error(&self, up: &Upstream, status: tonic::Status) -> GatewayError {
        let name = up.name();
        let lost = matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal)
            && is_transport_failure(&status);
        if status.code() == tonic::Code::Cancelled && status.message().contains("Timeout expired") {
            return crate::pipeline::guard::deadline_error(name, up.config.timeouts.invoke);
        }
        if lost || status.code() == tonic::Code::Unavailable {
            // Re-check now so a dead provider leaves the catalog promptly.
            self.registry.poke(name);
            let detail = crate::southbound::describe_status(&status, &up.config);
            let message = if lost {
                format!("connection to the provider was lost: {detail}")
            } else {
                format!("provider unavailable: {detail}")
            };
            return GatewayError::Provider {
                provider: name.to_string(),
                code: tonic::Code::Unavailable,
                message,
            };
        }
        if status.code() == tonic::Code::OutOfRange
            && status.message().contains("message length too large")
        {
            return GatewayError::PayloadTooLarge {
                what: "provider response",
                size: found_bytes(status.message()),
                limit: self.max_payload,
            };
        }
        GatewayError::from_status(name, status)
    }
}

/// The size in tonic's "message length too large: found N bytes" status.
fn found_bytes(message: &str) -> Option<usize> {
    let rest = &message[message.find("found ")? + "found ".len()..];
    rest.split_once(" bytes")?.0.parse().ok()
}

/// A status synthesized by tonic from a broken connection rather than sent by
/// the provider: only client-side statuses carry a source error, and a
/// decode failure is the provider's fault, not the connection's.
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some() && !status.message().contains("decode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_an_oversized_answer_is_read_from_tonic() {
        let m = "Error, decoded message length too large: found 20971555 bytes, the limit is: 10485760 bytes";
        assert_eq!(found_bytes(m), Some(20_971_555));
        assert_eq!(found_bytes("message length too large"), None);
    }

    #[test]
    fn a_status_the_provider_sent_is_not_a_transport_failure() {
        assert!(!is_transport_failure(&tonic::Status::internal("boom")));
        assert!(!is_transport_failure(&tonic::Status::unknown("?")));
    }
}
