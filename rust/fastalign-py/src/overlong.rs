//! Bindings for `fastalign_core::overlong`.

use fastalign_core::overlong::completion_mask_into;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{out_slice, slice2};
use crate::detach::run_detached;
use crate::errors::Result;

/// `(mask (b, t), is_truncated (b,), lengths (b,) int64, num_items)`
type MaskTuple<'py, M> = (Bound<'py, PyArray2<M>>, Bound<'py, PyArray1<bool>>, Bound<'py, PyArray1<i64>>, i64);

macro_rules! mask_binding {
    ($t:ty, $m:ty, $name:ident) => {
        /// Completion mask from right-padded ids; see `fastalign.overlong.completion_mask`.
        #[pyfunction]
        #[pyo3(signature = (completion_ids, eos_token_ids, pad_token_id, mask_truncated_completions))]
        pub fn $name<'py>(
            py: Python<'py>,
            completion_ids: PyReadonlyArray2<'py, $t>,
            eos_token_ids: Vec<i64>,
            pad_token_id: i64,
            mask_truncated_completions: bool,
        ) -> Result<MaskTuple<'py, $m>> {
            let (ids, t) = slice2(&completion_ids, "completion_ids")?;
            let b = completion_ids.shape()[0];
            // numpy allocates the (large) mask: zero-filled lazily by the OS and, above a few
            // MB, on huge pages, which makes writing it several times cheaper than a fresh Vec.
            let mask = PyArray2::<$m>::zeros(py, [b, t], false);
            let rows = {
                let mut rw = mask.readwrite();
                let out = out_slice(&mut rw)?;
                run_detached(py, || {
                    completion_mask_into(ids, t, &eos_token_ids, pad_token_id, mask_truncated_completions, out, true)
                })?
            };
            Ok((mask, rows.is_truncated.into_pyarray(py), rows.lengths.into_pyarray(py), rows.num_items))
        }
    };
}

mask_binding!(i32, i64, completion_mask_i32);
mask_binding!(i64, i64, completion_mask_i64);
mask_binding!(i32, i32, completion_mask_i32_to_i32);
mask_binding!(i64, i32, completion_mask_i64_to_i32);
mask_binding!(i32, bool, completion_mask_i32_to_bool);
mask_binding!(i64, bool, completion_mask_i64_to_bool);
