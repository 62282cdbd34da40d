//! The two successful answers a partner can give: done now, or already done before.

use std::borrow::Cow;

use crate::error::ErrorCode;

/// A successful partner answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    /// The partner did it in answer to this call.
    Done(T),
    /// The partner said it had already been done; the step succeeded and the note goes into
    /// the workflow history.
    AlreadyDone(AlreadyDone<T>),
}

/// Why the partner considered the call already done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyDone<T> {
    /// The answer's data, when the partner sent any (a replayed original answer does).
    pub data: Option<T>,
    /// The documented partner code that meant "already done", if one did.
    pub code: Option<ErrorCode>,
    /// One sentence for the history; never personal data.
    pub note: Cow<'static, str>,
}

impl<T> Reply<T> {
    /// The data, whichever way the call succeeded, when there is any.
    pub fn data(&self) -> Option<&T> {
        match self {
            Reply::Done(data) => Some(data),
            Reply::AlreadyDone(already) => already.data.as_ref(),
        }
    }

    pub fn into_data(self) -> Option<T> {
        match self {
            Reply::Done(data) => Some(data),
            Reply::AlreadyDone(already) => already.data,
        }
    }

    pub fn is_already_done(&self) -> bool {
        matches!(self, Reply::AlreadyDone(_))
    }

    /// The note for the history, if the partner had already done it.
    pub fn note(&self) -> Option<&str> {
        match self {
            Reply::Done(_) => None,
            Reply::AlreadyDone(already) => Some(&already.note),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<U> {
        match self {
            Reply::Done(data) => Reply::Done(f(data)),
            Reply::AlreadyDone(already) => Reply::AlreadyDone(AlreadyDone {
                data: already.data.map(f),
                code: already.code,
                note: already.note,
            }),
        }
    }

    pub(crate) fn already(code: ErrorCode, note: &'static str) -> Self {
        Reply::AlreadyDone(AlreadyDone {
            data: None,
            code: Some(code),
            note: Cow::Borrowed(note),
        })
    }
}
