//! The health routes, answered without a token: `/status` and `/livez` while
//! the process serves, `/readyz` when the database answers and migrations
//! are applied.

use hyper::{Response, StatusCode};

use crate::error::ApiError;
use crate::http::response::{text, ResBody};
use crate::http::state::AppState;
use crate::store::Store;

/// `/status` and `/livez`: the process serves.
pub fn alive() -> Response<ResBody> {
    text(StatusCode::OK, "ok")
}

/// `/readyz`: `200` once migrations are applied and the database answers.
pub async fn ready<S: Store>(state: &AppState<S>) -> Result<Response<ResBody>, ApiError> {
    if !state.is_migrated() {
        return Err(ApiError::Migrating);
    }
    state.store.ping().await?;
    Ok(text(StatusCode::OK, "ok"))
}
