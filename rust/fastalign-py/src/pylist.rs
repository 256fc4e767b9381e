//! Reading Python lists (token ids, completions) at the same speed in the abi3 build.
//!
//! Under the limited API (the abi3 wheel) pyo3 cannot inline CPython's macros: reading one list
//! item costs `PyList_GetItem` + `Py_IncRef`, its type check `PyType_GetFlags`, dropping it
//! `Py_DecRef`, and the list iterator calls `PyList_Size` at every step. On the token lists of a
//! generation batch that made `concat_lists` 2x slower and the list path of `SoftOverlong` 1.7x
//! slower than the version-specific build. Here each item is read as a borrowed reference and
//! checked by its exact type (a pointer comparison), so a plain `int` costs two calls
//! (`PyList_GetItem`, `PyLong_AsLongLong`) and a plain list's length one (`PyList_GetItem`;
//! `Py_SIZE` is inline). Anything else (an `int` subclass or `bool`, a numpy integer, a big int, a
//! tuple or any sized object) is handed to the caller's `slow` conversion with an owned
//! reference, exactly as before, so results and error messages do not change.
//!
//! The borrowed fast path is compiled only for the GIL-enabled limited API; a version-specific
//! build (including free-threaded CPython, where borrowing list items is not thread-safe) keeps
//! pyo3's own iteration, which is already inlined there.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::Result;

/// Append the ints of `seq` to `out` when `seq` is a list or a tuple (`Ok(true)`); `Ok(false)`,
/// with nothing appended, for anything else. `slow` converts an item that is not a plain `int`
/// within the i64 range, and gives the error for an item that is not an int at all.
pub(crate) fn extend_i64<'py>(
    seq: &Bound<'py, PyAny>,
    out: &mut Vec<i64>,
    mut slow: impl FnMut(&Bound<'py, PyAny>) -> Result<i64>,
) -> Result<bool> {
    if let Ok(list) = seq.cast::<PyList>() {
        imp::list_i64(list, out, &mut slow)?;
    } else if let Ok(tuple) = seq.cast::<PyTuple>() {
        imp::tuple_i64(tuple, out, &mut slow)?;
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// `f(len(item))` for each item of `list`, in order; `slow` measures an item that is not a plain
/// list (a tuple, an array, a list subclass, ...), and gives the error for one without a length.
pub(crate) fn for_each_len<'py>(
    list: &Bound<'py, PyList>,
    mut slow: impl FnMut(&Bound<'py, PyAny>) -> Result<usize>,
    mut f: impl FnMut(usize),
) -> Result<()> {
    imp::for_each_len(list, &mut slow, &mut f)
}

#[cfg(all(Py_LIMITED_API, not(Py_GIL_DISABLED)))]
#[allow(unsafe_code)]
mod imp {
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::{PyList, PyTuple};

    use crate::errors::Result;

    /// The shared loop: item `i` of a list or tuple as a borrowed pointer, the fast conversion
    /// (no Python code may run in it), and the slow one on an owned reference.
    ///
    /// SAFETY (of the `borrowed` callers below): the GIL is held throughout (we hold a
    /// `Python<'py>` token and this is not a free-threaded build), and `i < n` <= the length,
    /// read with no Python code run since: `fast` runs none (it compares a type pointer, then
    /// calls `PyLong_AsLongLong` on an exact `int` or reads `Py_SIZE` of an exact `list`), and
    /// `n` is lowered to the length after each `slow` call, which may run some. So item `i`
    /// exists, the container holds a reference to it while `fast` looks at it, and `fast` keeps
    /// no pointer.
    fn walk<'py, T>(
        len: impl Fn() -> usize,
        borrowed: impl Fn(usize) -> *mut ffi::PyObject,
        owned: impl Fn(usize) -> PyResult<Bound<'py, PyAny>>,
        fast: impl Fn(*mut ffi::PyObject) -> Option<T>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<T>,
        mut f: impl FnMut(T),
    ) -> Result<()> {
        let mut n = len();
        let mut i = 0;
        while i < n {
            let p = borrowed(i);
            match if p.is_null() { None } else { fast(p) } {
                Some(v) => f(v),
                None => {
                    f(slow(&owned(i)?)?);
                    n = n.min(len()); // as pyo3's iterator: items appended meanwhile are not read
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// An exact `int` within i64, read without running Python code; `None` for anything else
    /// (and for -1 when it came with an error, which is cleared: `slow` raises its own).
    fn exact_int(py: Python<'_>, p: *mut ffi::PyObject) -> Option<i64> {
        // SAFETY: `p` is a live object (see `walk`); reading its type and converting an exact
        // int touch nothing else.
        unsafe {
            if ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyLong_Type) {
                return None;
            }
            let v = ffi::PyLong_AsLongLong(p);
            if v == -1 && !ffi::PyErr_Occurred().is_null() {
                drop(PyErr::take(py));
                return None;
            }
            Some(v)
        }
    }

    pub(super) fn list_i64<'py>(
        list: &Bound<'py, PyList>,
        out: &mut Vec<i64>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<i64>,
    ) -> Result<()> {
        let py = list.py();
        let ptr = list.as_ptr();
        out.reserve(list.len());
        walk(
            || list.len(),
            // SAFETY: `ptr` is a list, `i` is in bounds (see `walk`): a borrowed reference.
            |i| unsafe { ffi::PyList_GetItem(ptr, i as ffi::Py_ssize_t) },
            |i| list.get_item(i),
            |p| exact_int(py, p),
            slow,
            |v| out.push(v),
        )
    }

    pub(super) fn tuple_i64<'py>(
        tuple: &Bound<'py, PyTuple>,
        out: &mut Vec<i64>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<i64>,
    ) -> Result<()> {
        let py = tuple.py();
        let ptr = tuple.as_ptr();
        out.reserve(tuple.len());
        walk(
            || tuple.len(),
            // SAFETY: `ptr` is a tuple (immutable), `i` is in bounds: a borrowed reference.
            |i| unsafe { ffi::PyTuple_GetItem(ptr, i as ffi::Py_ssize_t) },
            |i| tuple.get_item(i),
            |p| exact_int(py, p),
            slow,
            |v| out.push(v),
        )
    }

    pub(super) fn for_each_len<'py>(
        list: &Bound<'py, PyList>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<usize>,
        f: &mut dyn FnMut(usize),
    ) -> Result<()> {
        let ptr = list.as_ptr();
        walk(
            || list.len(),
            // SAFETY: `ptr` is a list, `i` is in bounds (see `walk`): a borrowed reference.
            |i| unsafe { ffi::PyList_GetItem(ptr, i as ffi::Py_ssize_t) },
            |i| list.get_item(i),
            // SAFETY: `p` is a live object (see `walk`); an exact list's length is its `ob_size`,
            // part of the stable ABI (`Py_SIZE` is inline up to the 3.15 limited API).
            |p| unsafe {
                (ffi::Py_TYPE(p) == std::ptr::addr_of_mut!(ffi::PyList_Type)).then(|| ffi::Py_SIZE(p) as usize)
            },
            slow,
            f,
        )
    }
}

/// The version-specific build (and free-threaded CPython): pyo3's iteration, inlined there.
#[cfg(not(all(Py_LIMITED_API, not(Py_GIL_DISABLED))))]
mod imp {
    use pyo3::prelude::*;
    use pyo3::types::{PyList, PyTuple};

    use crate::errors::Result;

    pub(super) fn list_i64<'py>(
        list: &Bound<'py, PyList>,
        out: &mut Vec<i64>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<i64>,
    ) -> Result<()> {
        out.reserve(list.len());
        for x in list.iter() {
            out.push(slow(&x)?);
        }
        Ok(())
    }

    pub(super) fn tuple_i64<'py>(
        tuple: &Bound<'py, PyTuple>,
        out: &mut Vec<i64>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<i64>,
    ) -> Result<()> {
        out.reserve(tuple.len());
        for x in tuple.iter() {
            out.push(slow(&x)?);
        }
        Ok(())
    }

    pub(super) fn for_each_len<'py>(
        list: &Bound<'py, PyList>,
        slow: &mut dyn FnMut(&Bound<'py, PyAny>) -> Result<usize>,
        f: &mut dyn FnMut(usize),
    ) -> Result<()> {
        for item in list.iter() {
            f(match item.cast::<PyList>() {
                Ok(inner) => inner.len(),
                Err(_) => slow(&item)?,
            });
        }
        Ok(())
    }
}
