//! The layers every request passes through on its way to the router, outermost
//! first. Each is one function that takes the request and the next step, in a
//! file of its own; [`handle`] is the one place their order is set. Handlers
//! know nothing of them.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::response::ResBody;
use super::router;
use super::state::AppState;
use crate::store::Store;
use crate::telemetry::traces;

pub mod access_log;
pub mod cors;
pub mod metrics;
pub mod trace;

/// Answers one request through every layer, outermost first: the trace span
/// (while traces are exported), the access log, the metrics (unless off),
/// CORS, then the router. Never fails: errors are responses.
pub async fn handle<S: Store>(
    state: Arc<AppState<S>>,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let origins = Arc::clone(&state.cors);
    let measured = state.metrics.is_some();
    let traced = traces::enabled();
    // The router parses the path again; the template is only worth finding
    // for the layers that label by it.
    let route = if measured || traced {
        router::route_of(req.uri().path())
    } else {
        0
    };
    let logged = |req| {
        access_log::layer(req, |req| async move {
            let inner = |req| {
                cors::layer(&origins, router::allowed_methods, req, |req| {
                    router::handle(state, req)
                })
            };
            if measured {
                metrics::layer(route, req, inner).await
            } else {
                inner(req).await
            }
        })
    };
    if traced {
        trace::layer(router::ROUTES[route], req, logged).await
    } else {
        logged(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sealed::Sealed;
    use crate::store::{PgStore, SqliteStore};

    /// The size of what `f` returns, here a future, without making one.
    fn size_of_return<A, B, R>(_: impl Fn(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every request's future is moved into a box of its own
    /// (`http::server`): a copy of all its bytes per request, and its room
    /// held while the request is served. A future that awaits another it was
    /// handed holds that one twice (the argument, and the value awaited), and
    /// a chain of such wrappers doubles at each step: the request future was
    /// 84 KB in the release build (24 KB in this one) before issue #29 made
    /// the store's wrappers take makers of futures instead.
    #[test]
    fn a_request_future_stays_small() {
        for (store, size) in [
            ("PostgreSQL", size_of_return(handle::<Sealed<PgStore>>)),
            ("SQLite", size_of_return(handle::<Sealed<SqliteStore>>)),
        ] {
            assert!(
                size <= 12 * 1024,
                "the request future on {store} is {size} bytes"
            );
        }
    }
}
