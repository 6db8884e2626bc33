//! The HTTP APIs beside the WebSocket endpoint: server-side publishing and history reads,
//! and the admin API.
//! Every error goes through [`ApiError`], the one place that decides statuses and bodies.

pub(crate) mod admin;
mod error;
mod keys;
pub(crate) mod publish;

pub use error::ApiError;
pub(crate) use keys::bearer;
pub use keys::ApiKeys;
pub(crate) use publish::{history, publish, publish_batch};
