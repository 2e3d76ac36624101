//! Field-level validation errors, collected so one response names every bad field.

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

/// Whether a timestamp is one Lethe stores: years 1970 to 9999.
pub fn is_storable_time(t: DateTime<Utc>) -> bool {
    (1970..=9999).contains(&t.year())
}

/// One invalid field: a JSON path (`matches[3].data_mappers[0]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// Whether `message` tells something about the data mappers (their names, columns,
    /// types, partition keys) that the caller did not send: such messages are shown only
    /// to callers who may read data mappers ([`FieldError::generic`] for the others).
    #[serde(skip)]
    pub about_mappers: bool,
}

/// What a caller who may not read data mappers is told instead of a message about them.
pub const GENERIC_MAPPER_MESSAGE: &str = "is not accepted for the data mappers it applies to (the reason is shown to roles that may read data mappers)";

impl FieldError {
    /// The error as a caller who may not read data mappers sees it: the same field, and a
    /// generic message when the precise one is about the mappers.
    pub fn generic(self) -> Self {
        if self.about_mappers {
            Self {
                field: self.field,
                message: GENERIC_MAPPER_MESSAGE.to_owned(),
                about_mappers: true,
            }
        } else {
            self
        }
    }
}

/// An accumulator of field errors.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
            about_mappers: false,
        });
    }
    /// Adds an error whose message describes the data mappers (see
    /// [`FieldError::about_mappers`]).
    pub fn add_about_mappers(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
            about_mappers: true,
        });
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(value)` when nothing was added, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}
