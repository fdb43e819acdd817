//! Rust errors as the exceptions of `tacit.errors`.
//!
//! The exception classes are plain Python (their docs, constructors and
//! hierarchy live in `tacit/errors.py`); an error crosses as a
//! [`NativeError`], which the event loop's thread turns into one with
//! `tacit.errors._from_native`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tacit::Error;

/// An error on its way to Python: what kind, the message, and the wire code.
#[derive(Debug)]
pub(crate) struct NativeError {
    kind: &'static str,
    message: String,
    code: i32,
    rejection: Option<Box<RejectionParts>>,
}

/// A rejection's act, reason and raw detail `(intent id, payload)`.
type RejectionParts = (i32, String, Option<(Vec<u8>, Vec<u8>)>);

impl NativeError {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), code: 0, rejection: None }
    }

    /// No answer within the caller's timeout (`DEADLINE_EXCEEDED`).
    pub(crate) fn deadline() -> Self {
        Self {
            kind: "deadline",
            message: "a dynamic intent: no reply within the deadline".into(),
            code: tacit::ErrorCode::DeadlineExceeded as i32,
            rejection: None,
        }
    }

    /// The exception: an instance of a `tacit.errors` class.
    pub(crate) fn into_pyerr(self, py: Python<'_>) -> PyErr {
        static FROM_NATIVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let build = || -> PyResult<PyErr> {
            let from_native = FROM_NATIVE.import(py, "tacit.errors", "_from_native")?;
            let (act, reason, detail) = match self.rejection.map(|parts| *parts) {
                Some((act, reason, detail)) => (Some(act), Some(reason), detail),
                None => (None, None, None),
            };
            let (detail_intent, detail) = detail.map_or((None, None), |(id, payload)| (Some(id), Some(payload)));
            let error = from_native.call1((
                self.kind,
                &self.message,
                self.code,
                act,
                reason,
                detail_intent.map(|id| pyo3::types::PyBytes::new(py, &id).unbind()),
                detail.map(|payload| pyo3::types::PyBytes::new(py, &payload).unbind()),
            ))?;
            Ok(PyErr::from_value(error))
        };
        build().unwrap_or_else(|error| error)
    }
}

impl From<Error> for NativeError {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Rejected { .. } => "rejected",
            Error::NotNegotiated { .. } | Error::WrongLane { .. } => "not_negotiated",
            Error::DeadlineExceeded { .. } => "deadline",
            Error::Unknown { .. } => "outcome_unknown",
            Error::Session(_) | Error::Closed { .. } => "connection_lost",
            Error::Decode { .. } | Error::UnexpectedReply { .. } => "decode",
            Error::TooLarge { .. } => "too_large",
            Error::DatagramsUnsupported => "not_negotiated",
            Error::Stream(_) => "stream",
            Error::Refused(_) => "refused",
            Error::Schema { .. } => "schema",
            Error::Connect { .. } => "connect",
            Error::IdentityMismatch { .. } => "identity_mismatch",
            Error::Bind { .. } | Error::Identity(_) | Error::Policy(_) => "config",
            Error::Shutdown => "shutdown",
            Error::ReplyUnsigned { .. } | Error::ReplySignatureInvalid { .. } => "signature",
            _ => "tacit",
        };
        let rejection = error.rejection().map(|rejection| {
            let detail = rejection.raw_detail().map(|(id, payload)| (id.as_bytes().to_vec(), payload.to_vec()));
            Box::new((rejection.act as i32, rejection.reason.clone(), detail))
        });
        Self { kind, message: error.to_string(), code: error.code() as i32, rejection }
    }
}

/// `ValueError`-like misuse from Python, raised at once (not through a future).
pub(crate) fn value_error(kind: &'static str, message: impl Into<String>) -> PyErr {
    Python::attach(|py| NativeError::new(kind, message).into_pyerr(py))
}
