//! What a console page answers when it cannot do what was asked: an HTML page saying
//! why and what to do, with the status the API would give (another site's ids are 404,
//! like ids that do not exist).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{Chrome, page};
use crate::service::ServiceError;
use crate::store::StoreError;

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// No session (or an expired one): go and sign in.
    #[error("sign in first")]
    SignIn,
    /// The thing named does not exist, or is not this session's to see.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The form or query is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A value was refused; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Refused: a failed CSRF or origin check, or a wrong admin token.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The store failed.
    #[error("the database failed")]
    Internal(#[from] StoreError),
}

impl From<ServiceError> for ConsoleError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => Self::NotFound(what),
            ServiceError::Invalid { message, .. } => Self::Invalid(message),
            ServiceError::Conflict { message, .. } => Self::Conflict(message),
            ServiceError::Store(err) => Self::Internal(err),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::SignIn => return Redirect::to("/console/sign-in").into_response(),
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Internal(err) => {
                tracing::error!(error = %err, "console request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = page(
            &Chrome::bare(),
            title,
            html! {
                h1 { (title) }
                p role="alert" { (self.to_string()) }
                p { a href="/console/" { "Back to the console" } }
            },
        );
        (status, body).into_response()
    }
}

/// Shorthand for console handler results.
pub type ConsoleResult<T> = Result<T, ConsoleError>;
