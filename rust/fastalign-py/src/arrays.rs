//! Borrowing numpy arrays as Rust slices, zero-copy, with errors that name the argument.

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::bad_argument;

/// The data of a C-contiguous 1-D array, borrowed in place.
pub(crate) fn slice1<'a, T: Element>(arr: &'a PyReadonlyArray1<'_, T>, name: &'static str) -> PyResult<&'a [T]> {
    arr.as_slice().map_err(|_| {
        bad_argument(arr.py(), name, "must be contiguous (call .contiguous() / np.ascontiguousarray first)")
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
        bad_argument(arr.py(), name, "must be C-contiguous (call .contiguous() / np.ascontiguousarray first)")
    })?;
    Ok((data, cols))
}

/// The data of a C-contiguous `(n,)` or `(n, k)` array as one row-major slice, plus `k` (1 for
/// a 1-D array): one row per completion, one column per reward function.
pub(crate) fn slice_rows<'a, T: Element>(
    arr: &'a PyReadonlyArrayDyn<'_, T>,
    name: &'static str,
) -> PyResult<(&'a [T], usize)> {
    let cols = match arr.shape() {
        [_] => 1,
        [_, k] => *k,
        shape => return Err(bad_argument(arr.py(), name, format!("expected a 1-D or 2-D array, got shape {shape:?}"))),
    };
    // `as_slice` also accepts Fortran order, which would be read transposed
    if !arr.is_c_contiguous() {
        return Err(bad_argument(
            arr.py(),
            name,
            "must be C-contiguous (call .contiguous() / np.ascontiguousarray first)",
        ));
    }
    let data = arr.as_slice().map_err(|_| {
        bad_argument(arr.py(), name, "must be C-contiguous (call .contiguous() / np.ascontiguousarray first)")
    })?;
    Ok((data, cols))
}

/// An array of any dtype the kernels read, as the kernels borrow it.
#[derive(FromPyObject)]
pub(crate) enum AnyArray<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
    I32(PyReadonlyArray2<'py, i32>),
    I64(PyReadonlyArray2<'py, i64>),
}

/// The address of the memory a kernel reads for this (2-D) array, borrowed exactly as the
/// kernels borrow their inputs. Tests compare it with the tensor's `data_ptr()` to prove that
/// no copy is made on the way into Rust.
#[pyfunction]
pub(crate) fn _borrowed_address(array: AnyArray<'_>) -> PyResult<usize> {
    Ok(match &array {
        AnyArray::F32(a) => slice2(a, "array")?.0.as_ptr() as usize,
        AnyArray::F64(a) => slice2(a, "array")?.0.as_ptr() as usize,
        AnyArray::I32(a) => slice2(a, "array")?.0.as_ptr() as usize,
        AnyArray::I64(a) => slice2(a, "array")?.0.as_ptr() as usize,
    })
}
