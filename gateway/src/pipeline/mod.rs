//! The core every front door shares: the catalog and registry of
//! providers, the dispatcher's named stages (visibility, rate limit,
//! validation, cache, guarded call, result mapping, observation), and who
//! to notify of what.

pub mod catalog;
pub mod convert;
pub mod dispatch;
pub mod error;
pub(crate) mod guard;
pub mod naming;
pub(crate) mod notify;
pub mod process;
pub mod registry;
pub mod schema;
