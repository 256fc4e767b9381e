//! Borrowing numpy arrays as Rust slices, zero-copy, with errors that name the argument.

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::bad_argument;

/// The data of a C-contiguous 1-D array, borrowed in place.
pub(crate) fn slice1<'a, T: Element>(
    arr: &'a PyReadonlyArray1<'_, T>,
    name: &'static str,
) -> PyResult<&'a [T]> {
    arr.as_slice().map_err(|_| {
        bad_argument(
            arr.py(),
            name,
            "must be contiguous (call .contiguous() / np.ascontiguousarray first)",
        )
    })
}

/// The data of a C-contiguous 2-D array as one row-major slice, plus its column count.
pub(crate) fn slice2<'a, T: Element>(
    arr: &'a PyReadonlyArray2<'_, T>,
    name: &'static str,
) -> PyResult<(&'a [T], usize)> {
    if !arr.is_c_contiguous() {
        return Err(bad_argument(
            arr.py(),
            name,
            "must be C-contiguous (call .contiguous() / np.ascontiguousarray first)",
        ));
    }
    let cols = arr.shape()[1];
    let data = arr.as_slice().map_err(|_| {
        bad_argument(
            arr.py(),
            name,
            "must be C-contiguous (call .contiguous() / np.ascontiguousarray first)",
        )
    })?;
    Ok((data, cols))
}
