//! A failed provider call's status as the gateway's error (the table is
//! [`GatewayError::from_call_status`]); an unreachable provider is
//! re-checked at once, so that a dead one leaves the catalog promptly.

use super::Dispatcher;
use crate::{pipeline::error::GatewayError, southbound::Upstream};

impl Dispatcher {
    pub(super) fn status_error(&self, up: &Upstream, status: tonic::Status) -> GatewayError {
        let e = GatewayError::from_call_status(
            up.name(),
            status,
            up.config.timeouts.invoke,
            self.max_payload,
            |s| crate::southbound::describe_status(s, &up.config),
        );
        if e.is_unavailable() {
            self.registry.poke(up.name());
        }
        e
    }
}
