//! The handlers, grouped by what they serve. Each receives parsed, validated
//! input from the router and answers with a response or an [`ApiError`].
//!
//! [`ApiError`]: crate::error::ApiError

pub mod changes;
pub mod health;
pub mod item;
pub mod list;
pub mod metrics;
pub mod prefix;
pub mod txn;
pub mod values;
pub mod watch;
