//! Map core errors and panics to fastalign's Python exception hierarchy.
//!
//! The classes are defined once, in `python/fastalign/errors.py` (they need multiple
//! inheritance: `InvalidArgumentError` is both a `FastalignError` and a `ValueError`), and
//! looked up here when an error is raised.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

fn error_class<'py>(py: Python<'py>, name: &str) -> Option<Bound<'py, PyType>> {
    let cls = py.import("fastalign.errors").ok()?.getattr(name).ok()?;
    cls.cast_into::<PyType>().ok()
}

/// A core error as a Python `fastalign.errors.InvalidArgumentError` (a `ValueError`).
pub(crate) fn invalid_argument(py: Python<'_>, e: fastalign_core::Error) -> PyErr {
    match error_class(py, "InvalidArgumentError") {
        Some(cls) => PyErr::from_type(cls, (e.message, e.argument)),
        None => PyValueError::new_err(e.to_string()),
    }
}

/// A wrong argument detected in the binding itself (shape, contiguity).
pub(crate) fn bad_argument(py: Python<'_>, argument: &'static str, message: impl Into<String>) -> PyErr {
    invalid_argument(py, fastalign_core::Error::new(argument, message))
}

/// A panic caught at the boundary: a bug in fastalign, reported as `InternalError`.
pub(crate) fn internal(py: Python<'_>, message: String) -> PyErr {
    let message = format!("internal error in fastalign (please report it): {message}");
    match error_class(py, "InternalError") {
        Some(cls) => PyErr::from_type(cls, (message,)),
        None => PyRuntimeError::new_err(message),
    }
}
