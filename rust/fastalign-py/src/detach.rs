//! Run a core kernel with the GIL released and panics caught.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;

use crate::errors::{Error, Result};

/// Release the GIL, run `f`, and turn its error or any panic into an [`Error`] (an
/// `InvalidArgumentError` or an `InternalError` once it reaches Python).
///
/// `f` must only touch plain Rust data (slices borrowed from numpy before the call are fine:
/// their borrows stay valid while detached). A panic never unwinds into Python.
pub(crate) fn run_detached<T, F>(py: Python<'_>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> fastalign_core::Result<T> + Send,
{
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".to_owned());
            Err(Error::Internal(msg))
        }
    }
}

/// Panic inside [`run_detached`] on purpose. Tests call it to prove that a panic in a kernel
/// reaches Python as `fastalign.errors.InternalError`, never as an abort.
#[pyfunction]
pub(crate) fn _panic_for_tests(py: Python<'_>) -> Result<()> {
    run_detached(py, || -> fastalign_core::Result<()> { panic!("deliberate panic (test)") })
}
