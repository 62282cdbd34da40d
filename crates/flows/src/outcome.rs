//! Connector answers to engine outcomes, in one place: done and already-done succeed
//! (already-done with a note for the history), retryable errors retry with the
//! partner's Retry-After, permanent errors fail with the connector's stable code.

use closeout_connectors::{Error, Reply};
use closeout_engine::action::Outcome;
use serde_json::{json, Value};

/// Maps a connector result, turning its data into the step's output with `output`.
pub fn from_reply<T>(
    result: Result<Reply<T>, Error>,
    output: impl FnOnce(Option<T>) -> Value,
) -> Outcome {
    match result {
        Ok(Reply::Done(data)) => Outcome::done(output(Some(data))),
        Ok(Reply::AlreadyDone(already)) => {
            let mut value = output(already.data);
            if let Value::Object(map) = &mut value {
                map.insert("already_done".into(), json!(true));
            }
            Outcome::noted(value, already.note.into_owned())
        }
        Err(error) => from_error(&error),
    }
}

pub fn from_error(error: &Error) -> Outcome {
    let code = error.code().to_string();
    match error {
        Error::Retryable(retry) => Outcome::Retry {
            code,
            message: error.to_string(),
            after: retry.retry_after,
        },
        Error::Permanent(_) | Error::Config { .. } => Outcome::fail(code, error.to_string()),
    }
}

/// The data of a successful reply, or the outcome to return instead.
pub fn data<T>(result: Result<Reply<T>, Error>, missing: &str) -> Result<T, Outcome> {
    match result {
        Ok(reply) => reply.into_data().ok_or_else(|| {
            Outcome::retry(
                crate::codes::MISSING_DATA,
                format!("{missing}: the partner answered without data; retrying"),
            )
        }),
        Err(error) => Err(from_error(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeout_connectors::{AlreadyDone, Endpoint, ErrorCode, Failure, Partner, Retry};
    use std::time::Duration;

    #[test]
    fn done_and_already_done_succeed() {
        let done = from_reply(Ok(Reply::Done(1)), |n| json!({ "n": n }));
        assert_eq!(done, Outcome::done(json!({ "n": 1 })));
        let already = from_reply(
            Ok(Reply::<i32>::AlreadyDone(AlreadyDone {
                data: None,
                code: Some(ErrorCode::VietjetUserNotExist),
                note: "nothing left to remove".into(),
            })),
            |_| json!({}),
        );
        assert_eq!(
            already,
            Outcome::noted(json!({ "already_done": true }), "nothing left to remove")
        );
    }

    #[test]
    fn errors_keep_their_code_and_retry_after() {
        let retry = Error::Retryable(Retry {
            partner: Partner::Skyjoy,
            endpoint: Endpoint::SkyjoyDeletionRequest,
            code: ErrorCode::RateLimited,
            status: Some(429),
            retry_after: Some(Duration::from_secs(7)),
            ambiguous: false,
        });
        match from_reply::<()>(Err(retry), |_| json!({})) {
            Outcome::Retry { code, after, .. } => {
                assert_eq!(code, "RATE_LIMITED");
                assert_eq!(after, Some(Duration::from_secs(7)));
            }
            other => panic!("{other:?}"),
        }
        let fail = Error::Permanent(Failure {
            partner: Partner::Skyjoy,
            endpoint: Endpoint::SkyjoyDeletionRequest,
            code: ErrorCode::SkyjoyEmailNotVerified,
            status: Some(400),
            detail: None,
        });
        assert!(
            matches!(from_reply::<()>(Err(fail), |_| json!({})), Outcome::Fail { code, .. } if code == "SKYJOY_EMAIL_NOT_VERIFIED")
        );
    }
}
