//! Borrowing numpy arrays as Rust slices, zero-copy, with errors that name the argument.

use numpy::ndarray::Dimension;
use numpy::{
    Element, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyReadwriteArray, PyReadwriteArray1,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::errors::{bad_argument, Error, Result};

const NOT_C_CONTIGUOUS: &str = "must be C-contiguous (call .contiguous() / np.ascontiguousarray first)";

/// The data of a C-contiguous 1-D array, borrowed in place.
pub(crate) fn slice1<'a, T: Element>(arr: &'a PyReadonlyArray1<'_, T>, name: &'static str) -> Result<&'a [T]> {
    arr.as_slice()
        .map_err(|_| bad_argument(name, "must be contiguous (call .contiguous() / np.ascontiguousarray first)"))
}

/// The data of a C-contiguous 2-D array as one row-major slice, plus its column count.
pub(crate) fn slice2<'a, T: Element>(arr: &'a PyReadonlyArray2<'_, T>, name: &'static str) -> Result<(&'a [T], usize)> {
    if !arr.is_c_contiguous() {
        return Err(bad_argument(name, NOT_C_CONTIGUOUS));
    }
    let cols = arr.shape()[1];
    let data = arr.as_slice().map_err(|_| bad_argument(name, NOT_C_CONTIGUOUS))?;
    Ok((data, cols))
}

/// The data of a C-contiguous `(n,)` or `(n, k)` array as one row-major slice, plus `k` (1 for
/// a 1-D array): one row per completion, one column per reward function.
pub(crate) fn slice_rows<'a, T: Element>(
    arr: &'a PyReadonlyArrayDyn<'_, T>,
    name: &'static str,
) -> Result<(&'a [T], usize)> {
    let cols = match arr.shape() {
        [_] => 1,
        [_, k] => *k,
        shape => return Err(bad_argument(name, format!("expected a 1-D or 2-D array, got shape {shape:?}"))),
    };
    // `as_slice` also accepts Fortran order, which would be read transposed
    if !arr.is_c_contiguous() {
        return Err(bad_argument(name, NOT_C_CONTIGUOUS));
    }
    let data = arr.as_slice().map_err(|_| bad_argument(name, NOT_C_CONTIGUOUS))?;
    Ok((data, cols))
}

/// The data of a caller's contiguous 1-D output array, borrowed in place for writing.
pub(crate) fn slice1_mut<'a, T: Element>(
    arr: &'a mut PyReadwriteArray1<'_, T>,
    name: &'static str,
) -> Result<&'a mut [T]> {
    arr.as_slice_mut().map_err(|_| bad_argument(name, "is not contiguous"))
}

/// The data of an output array the binding allocated itself (so contiguous): a failure here is
/// a bug in fastalign, not a wrong argument.
pub(crate) fn out_slice<'a, T: Element, D: Dimension>(arr: &'a mut PyReadwriteArray<'_, T, D>) -> Result<&'a mut [T]> {
    arr.as_slice_mut().map_err(|_| Error::Internal("a freshly allocated output array is not contiguous".to_owned()))
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
pub(crate) fn _borrowed_address(array: AnyArray<'_>) -> Result<usize> {
    Ok(match &array {
        AnyArray::F32(a) => slice2(a, "array")?.0.as_ptr() as usize,
        AnyArray::F64(a) => slice2(a, "array")?.0.as_ptr() as usize,
        AnyArray::I32(a) => slice2(a, "array")?.0.as_ptr() as usize,
        AnyArray::I64(a) => slice2(a, "array")?.0.as_ptr() as usize,
    })
}

/// A new C-contiguous 1-D array of `n` elements whose contents are not initialised, for an
/// output a kernel then writes in full (numpy's `zeros` would memset it first: about 1 µs of a
/// 10 µs call at N=8192).
///
/// The caller must write every element before the array reaches Python; on an error the array
/// is dropped unread.
#[allow(unsafe_code)]
pub(crate) fn uninit1<T: Element>(py: Python<'_>, n: usize) -> Bound<'_, numpy::PyArray1<T>> {
    // SAFETY: `PyArray1::new` allocates `n` elements of `T` (a plain number or bool) without
    // initialising them. Nothing reads them before the kernel has written them: the one caller,
    // `advantages::grpo_into_new`, hands the slices to `grpo_advantages_into`, which writes
    // every entry of all three outputs (rewards by the row sums, advantages and flags group by
    // group) or returns an error before writing, in which case the arrays are dropped unread.
    unsafe { numpy::PyArray1::<T>::new(py, n, false) }
}

// --- the fast paths' view of the user's arguments --------------------------------------------
//
// A fast path takes a user's argument as it is: a numpy array, or a CPU torch tensor seen
// through its numpy view, and answers `None` for anything else so that the Python wrapper runs
// its full checks (and raises the error that names the argument).

static TENSOR_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `torch.Tensor`, if the caller has imported torch (fastalign never imports it itself).
fn tensor_type<'py>(py: Python<'py>) -> Option<&'py Bound<'py, PyType>> {
    if TENSOR_TYPE.get(py).is_none() {
        let torch = py.import("sys").ok()?.getattr("modules").ok()?.get_item("torch").ok()?;
        let ty = torch.getattr("Tensor").ok()?.cast_into::<PyType>().ok()?;
        let _ = TENSOR_TYPE.set(py, ty.unbind());
    }
    TENSOR_TYPE.get(py).map(|t| t.bind(py))
}

/// The numpy view of a numpy array or CPU torch tensor; `None` for anything else (including
/// tensors `.numpy()` refuses: autograd, other devices, bf16).
pub(crate) fn numpy_view<'py>(x: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    if x.cast::<PyUntypedArray>().is_ok() {
        return Some(x.clone());
    }
    let py = x.py();
    if !x.is_instance(tensor_type(py)?).ok()? {
        return None;
    }
    x.call_method0(pyo3::intern!(py, "numpy")).ok()
}
