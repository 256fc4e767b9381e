//! The one mapping from fastalign's errors to its Python exceptions.
//!
//! Binding functions return [`Result`], so `?` works alike on core errors, the binding's own
//! checks and Python errors; the conversion to a `PyErr` happens once, in `From<Error> for
//! PyErr`, when a function returns. (A `From<fastalign_core::Error> for PyErr` is not allowed
//! here: neither type is this crate's.)
//!
//! The exception classes are defined in `python/fastalign/errors.py` (they need multiple
//! inheritance: `InvalidArgumentError` is both a `FastalignError` and a `ValueError`) and
//! looked up once.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// An error on its way out of a binding function.
#[derive(Debug)]
pub(crate) enum Error {
    /// A wrong argument: `fastalign.errors.InvalidArgumentError(message, argument)`.
    Argument(fastalign_core::Error),
    /// A bug in fastalign (a panic, a broken invariant of the binding): `InternalError`.
    Internal(String),
    /// Already a Python exception (argument extraction, a call into Python).
    Python(PyErr),
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

impl From<fastalign_core::Error> for Error {
    fn from(e: fastalign_core::Error) -> Self {
        Error::Argument(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Python(e)
    }
}

impl From<pyo3::CastIntoError<'_>> for Error {
    fn from(e: pyo3::CastIntoError<'_>) -> Self {
        Error::Python(e.into())
    }
}

/// A wrong argument detected in the binding itself (shape, contiguity).
pub(crate) fn bad_argument(argument: &'static str, message: impl Into<String>) -> Error {
    Error::Argument(fastalign_core::Error::new(argument, message))
}

/// `(InvalidArgumentError, InternalError)`, imported on first use.
static CLASSES: PyOnceLock<(Py<PyType>, Py<PyType>)> = PyOnceLock::new();

fn classes(py: Python<'_>) -> Option<&(Py<PyType>, Py<PyType>)> {
    CLASSES
        .get_or_try_init(py, || -> PyResult<_> {
            let module = py.import("fastalign.errors")?;
            let class =
                |name: &str| -> PyResult<Py<PyType>> { Ok(module.getattr(name)?.cast_into::<PyType>()?.unbind()) };
            Ok((class("InvalidArgumentError")?, class("InternalError")?))
        })
        .ok()
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Python(e) => e,
            Error::Argument(e) => Python::attach(|py| match classes(py) {
                Some((invalid, _)) => PyErr::from_type(invalid.bind(py).clone(), (e.message, e.argument)),
                None => PyValueError::new_err(e.to_string()),
            }),
            Error::Internal(message) => {
                let message = format!("internal error in fastalign (please report it): {message}");
                Python::attach(|py| match classes(py) {
                    Some((_, internal)) => PyErr::from_type(internal.bind(py).clone(), (message,)),
                    None => PyRuntimeError::new_err(message),
                })
            }
        }
    }
}
