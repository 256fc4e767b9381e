//! Bindings for `fastalign_core::rewards`: the soft overlong punishment.

use std::collections::HashMap;

use fastalign_core::rewards::SoftOverlong as Core;
use numpy::{
    Element, IntoPyArray, PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyList, PySequence};

use crate::arrays::{numpy_view, slice1};
use crate::detach::run_detached;
use crate::errors::{bad_argument, Error, Result};
use crate::pylist;

/// Longest ramp (`soft_punish_cache`) whose penalty floats are tabulated by length.
const RAMP_TABLE_MAX: u64 = 1 << 16;

/// The DAPO soft overlong punishment with fixed `L_max`, `L_cache`; evaluates lists of
/// completions (TRL's reward-function path) and length arrays.
#[pyclass(module = "fastalign._native", frozen, eq)]
#[derive(PartialEq)]
pub struct SoftOverlong {
    core: Core,
}

#[pymethods]
impl SoftOverlong {
    #[new]
    fn new(max_completion_len: i64, soft_punish_cache: i64) -> Result<Self> {
        Ok(Self { core: Core::new(max_completion_len, soft_punish_cache)? })
    }

    #[getter]
    fn max_completion_len(&self) -> i64 {
        self.core.max_completion_len()
    }

    #[getter]
    fn soft_punish_cache(&self) -> i64 {
        self.core.soft_punish_cache()
    }

    /// Penalties of a sequence of completions (each a list of token ids, or anything with a
    /// length), as a list of Python floats: exactly TRL's `_SoftOverlongPunishment.__call__`.
    ///
    /// Lists are read with the GIL held (they are Python objects); 0.0 and -1.0, the common
    /// values, are shared float objects rather than fresh allocations.
    fn penalties_of<'py>(&self, py: Python<'py>, completion_ids: &Bound<'py, PyAny>) -> Result<Bound<'py, PyList>> {
        let mut lengths = Vec::new();
        if let Ok(list) = completion_ids.cast::<PyList>() {
            lengths.reserve(list.len());
            pylist::for_each_len(list, |item| item.len().map_err(|_| not_sized()), |len| lengths.push(len))?;
        } else {
            let seq = completion_ids.cast::<PySequence>().map_err(|_| {
                bad_argument("completion_ids", "must be a list (or sequence) of completions, each a list of token ids")
            })?;
            lengths.reserve(seq.len()?);
            for item in seq.try_iter()? {
                lengths.push(item?.len().map_err(|_| not_sized())?);
            }
        }
        // Each distinct penalty becomes one Python float, shared by every completion that has
        // it: 0.0, -1.0, and at most `soft_punish_cache` ramp values, created on first use.
        let zero = PyFloat::new(py, 0.0);
        let minus_one = PyFloat::new(py, -1.0);
        let lmax = self.core.max_completion_len();
        let lo = lmax - self.core.soft_punish_cache();
        // The ramp's floats are tabulated by length when the ramp is short; a long ramp (up to
        // 2^53 lengths) would not fit in memory as a table, so its floats are kept in a map.
        let span = (lmax - lo) as u64;
        let mut ramp: Vec<Option<Bound<'py, PyFloat>>> = Vec::new();
        let mut ramp_map: HashMap<i64, Bound<'py, PyFloat>> = HashMap::new();
        // the penalty of a length, `None` for 0.0
        let mut value = |len: usize| -> Option<Bound<'py, PyFloat>> {
            let len = i64::try_from(len).unwrap_or(i64::MAX);
            Some(if len <= lo {
                return None;
            } else if len > lmax {
                minus_one.clone()
            } else if span <= RAMP_TABLE_MAX {
                if ramp.is_empty() {
                    ramp.resize(span as usize, None);
                }
                ramp[(len - lo - 1) as usize].get_or_insert_with(|| PyFloat::new(py, self.core.penalty(len))).clone()
            } else {
                ramp_map.entry(len).or_insert_with(|| PyFloat::new(py, self.core.penalty(len))).clone()
            })
        };
        // Every entry starts as the shared 0.0 (`[0.0] * n`, one C-level loop: under the limited
        // API each entry set from Rust costs two calls into the interpreter), then the others
        // are set one by one.
        let out = PyList::new(py, [zero])?.as_sequence().repeat(lengths.len())?.cast_into::<PyList>()?;
        for (i, &len) in lengths.iter().enumerate() {
            if let Some(v) = value(len) {
                out.set_item(i, v)?;
            }
        }
        Ok(out)
    }

    /// Vectorised penalties of an int32 lengths array (float64 output, or float32).
    fn penalties_i32<'py>(
        &self,
        py: Python<'py>,
        lengths: PyReadonlyArray1<'py, i32>,
        float64: bool,
    ) -> Result<Bound<'py, PyAny>> {
        let l = slice1(&lengths, "lengths")?;
        self.penalties(py, l, float64)
    }

    /// Vectorised penalties of an int64 lengths array (float64 output, or float32).
    fn penalties_i64<'py>(
        &self,
        py: Python<'py>,
        lengths: PyReadonlyArray1<'py, i64>,
        float64: bool,
    ) -> Result<Bound<'py, PyAny>> {
        let l = slice1(&lengths, "lengths")?;
        self.penalties(py, l, float64)
    }

    /// Penalties of a lengths argument taken as it is (a numpy array or CPU tensor, 1-D int32 or
    /// int64, C-contiguous, native byte order), as a float64 numpy array; `None` for anything
    /// else, which the Python wrapper then checks (and accepts or rejects) itself. The wrapper's
    /// checks cost more than the kernel at thousands of completions.
    fn penalties_fast<'py>(&self, py: Python<'py>, lengths: &Bound<'py, PyAny>) -> Result<Option<Bound<'py, PyAny>>> {
        let Some(view) = numpy_view(lengths) else { return Ok(None) };
        if let Ok(a) = view.cast::<PyArray1<i64>>() {
            self.penalties_fast_typed(py, a)
        } else if let Ok(a) = view.cast::<PyArray1<i32>>() {
            self.penalties_fast_typed(py, a)
        } else {
            Ok(None)
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "SoftOverlong(max_completion_len={}, soft_punish_cache={})",
            self.core.max_completion_len(),
            self.core.soft_punish_cache()
        )
    }

    fn __getnewargs__(&self) -> (i64, i64) {
        (self.core.max_completion_len(), self.core.soft_punish_cache())
    }
}

impl SoftOverlong {
    fn penalties_fast_typed<'py, I: Element + Copy + Into<i64> + Send + Sync>(
        &self,
        py: Python<'py>,
        lengths: &Bound<'py, PyArray1<I>>,
    ) -> Result<Option<Bound<'py, PyAny>>> {
        if !lengths.dtype().is_native_byteorder().unwrap_or(false) {
            return Ok(None);
        }
        let Ok(ro) = lengths.try_readonly() else { return Ok(None) };
        let Ok(l) = ro.as_slice() else { return Ok(None) };
        if l.is_empty() {
            return Ok(None);
        }
        self.penalties(py, l, true).map(Some)
    }

    fn penalties<'py, I: Copy + Into<i64> + Send + Sync>(
        &self,
        py: Python<'py>,
        lengths: &[I],
        float64: bool,
    ) -> Result<Bound<'py, PyAny>> {
        let core = &self.core;
        Ok(if float64 {
            let out = run_detached(py, || core.penalties_vec::<I, f64>(lengths))?;
            out.into_pyarray(py).into_any()
        } else {
            let out = run_detached(py, || core.penalties_vec::<I, f32>(lengths))?;
            out.into_pyarray(py).into_any()
        })
    }
}

fn not_sized() -> Error {
    bad_argument("completion_ids", "each completion must be a list of token ids (something with a length)")
}
