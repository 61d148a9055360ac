//! Storage errors. `NotFound` and the domain outcomes are for callers to map to
//! 4xx; `Unavailable` means the database cannot be reached (503); `Database`
//! and `Internal` are bugs or corruption (500, detail logged only).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::domain::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the Idempotency-Key was used before with a different request")]
    IdempotencyKeyReused,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[source] DieselError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if is_transient(info.message()) =>
            {
                StoreError::Unavailable(info.message().to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                StoreError::Conflict("concurrent update, try again")
            }
            other => StoreError::Database(other),
        }
    }
}

fn is_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database is locked")
        || m.contains("server closed the connection")
        || m.contains("terminating connection")
        || m.contains("connection refused")
        || m.contains("could not connect")
        || m.contains("no connection to the server")
        || m.contains("the database system is")
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
