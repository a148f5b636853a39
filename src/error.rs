//! The one error type of the HTTP API, turned into a status and a JSON body in
//! one place ([`ApiError::status`], [`ApiError::code`]).

use hyper::StatusCode;

use crate::auth::AuthError;
use crate::store::changes::Unreadable;
use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("token does not grant workspace {0}")]
    Forbidden(String),
    /// The ACL grants the token no `access` to the namespace (in op `op`
    /// of a transaction).
    #[error("{}the token may not {access} namespace {namespace:?}", .op.map(|i| format!("op {i}: ")).unwrap_or_default())]
    NamespaceForbidden {
        namespace: String,
        access: &'static str,
        op: Option<usize>,
    },
    /// The ACL has no rule for the token: it may use no namespace.
    #[error("the token may not read or write any namespace")]
    NoNamespace,
    #[error("not found")]
    NotFound,
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("precondition failed")]
    PreconditionFailed,
    /// A transaction whose conditions did not hold: these ops' (by index).
    #[error("the conditions of ops {0:?} did not hold; nothing was written")]
    OpsFailed(Vec<usize>),
    #[error("value is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// The `get`s of a transaction would read more than `limit` bytes of values.
    #[error("the gets of a transaction may read at most {limit} bytes of values; read fewer keys at once")]
    ReadTooLarge { limit: usize },
    #[error("the request body ended early or could not be read")]
    BodyIncomplete,
    #[error("timed out reading the request body")]
    BodyTimeout,
    #[error("service unavailable: the database did not answer in time")]
    Unavailable(String),
    #[error("service unavailable: database migrations are not applied yet; try again shortly")]
    Migrating,
    #[error("since {since} is ahead of the namespace's current revision {current}")]
    RevisionAhead { since: u64, current: u64 },
    #[error("the changes after revision {since} are no longer kept; the oldest kept is {oldest}: list the namespace again, then watch from the revision the listing answers")]
    RevisionCompacted { since: u64, oldest: u64 },
    #[error("internal error")]
    Internal(String),
    /// A stored value that does not open with the configured keys; the
    /// detail (row and key id, never bytes) goes to the log.
    #[error("the stored value cannot be decrypted with the configured keys")]
    Undecryptable(String),
}

impl ApiError {
    /// A `400` with a stable code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_)
            | ApiError::NamespaceForbidden { .. }
            | ApiError::NoNamespace => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest { .. }
            | ApiError::BodyIncomplete
            | ApiError::RevisionAhead { .. } => StatusCode::BAD_REQUEST,
            ApiError::RevisionCompacted { .. } => StatusCode::GONE,
            ApiError::PreconditionFailed | ApiError::OpsFailed(_) => {
                StatusCode::PRECONDITION_FAILED
            }
            ApiError::PayloadTooLarge { .. } | ApiError::ReadTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::Migrating => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::Undecryptable(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NamespaceForbidden { .. } | ApiError::NoNamespace => "namespace_forbidden",
            ApiError::NotFound => "not_found",
            ApiError::NoRoute => "no_route",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BadRequest { code, .. } => code,
            ApiError::PreconditionFailed | ApiError::OpsFailed(_) => "precondition_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::ReadTooLarge { .. } => "read_too_large",
            ApiError::BodyIncomplete => "body_incomplete",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Migrating => "migrating",
            ApiError::RevisionAhead { .. } => "revision_ahead",
            ApiError::RevisionCompacted { .. } => "revision_compacted",
            ApiError::Internal(_) => "internal",
            ApiError::Undecryptable(_) => "undecryptable",
        }
    }

    /// The message shown to the client; details of a `5xx` stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(_) => {
                "service unavailable: the database did not answer in time".to_owned()
            }
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// Text for the log (may hold database details; never a value).
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            ApiError::Unavailable(d) | ApiError::Internal(d) | ApiError::Undecryptable(d) => {
                Some(d)
            }
            _ => None,
        }
    }
}

impl ApiError {
    /// Why the feed cannot continue after `since`.
    pub fn unreadable(since: u64, why: Unreadable) -> Self {
        match why {
            Unreadable::Ahead { current } => ApiError::RevisionAhead { since, current },
            Unreadable::Compacted { oldest } => ApiError::RevisionCompacted { since, oldest },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(d) => ApiError::Unavailable(d),
            StoreError::Internal(d) => ApiError::Internal(d),
            StoreError::Undecryptable(d) => ApiError::Undecryptable(d),
        }
    }
}
