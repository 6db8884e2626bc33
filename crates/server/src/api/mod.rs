//! The HTTP APIs beside the WebSocket endpoint: server-side publishing and history reads.
//! Every error goes through [`ApiError`], the one place that decides statuses and bodies.

mod error;
mod keys;
mod publish;

pub use error::ApiError;
pub use keys::ApiKeys;
pub(crate) use publish::{history, publish, publish_batch};
