//! The HTTP side: the listener and its connections ([`server`], speaking
//! the protocol [`protocol`] finds), the layers
//! every request passes ([`layers`]), the router ([`router`]) and the handlers
//! it calls ([`handlers`]), with what they share: the parsed request
//! ([`request`]), responses ([`response`]), the state ([`state`]), the
//! namespace ACL ([`access`]), and HTTPS ([`tls`]); and the web console's
//! files ([`console`]). Nothing here knows SQL.

mod access;
mod activity;
mod console;
mod handlers;
mod layers;
mod protocol;
mod request;
mod response;
mod router;
pub mod server;
mod state;
pub mod tls;

pub use server::{serve, ServerOptions, Stopped};
pub use state::AppState;
