//! `fastalign._native`: the thin PyO3 layer over `fastalign-core`.
//!
//! Each function here does four things and nothing else: borrow the numpy inputs (no copy),
//! check what only the binding can check (contiguity, matching lengths), run the core kernel
//! with the GIL released ([`detach::run_detached`]), and return the outputs as numpy arrays and
//! plain tuples, which the Python modules turn into their result types. Errors of every kind
//! leave through `errors::Error`. Dtype dispatch, torch interop and user-facing messages live
//! in `python/fastalign/_validate.py`.

mod advantages;
mod arrays;
mod detach;
mod errors;
mod losses;
mod overlong;
mod packing;
mod pylist;
mod rewards;
mod rows;
mod select;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
mod _native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::advantages::{
        grpo_advantages_f32, grpo_advantages_f64, grpo_advantages_fast, rloo_advantages_f32, rloo_advantages_f64,
        zero_variance_groups_f32, zero_variance_groups_f64,
    };
    #[pymodule_export]
    use crate::arrays::_borrowed_address;
    #[pymodule_export]
    use crate::detach::_panic_for_tests;
    #[pymodule_export]
    use crate::losses::{
        grpo_loss_f32, grpo_loss_f64, masked_reduce_backward_f32, masked_reduce_backward_f64, masked_reduce_f32,
        masked_reduce_f64, vllm_is_ratio_f32, vllm_is_ratio_f64,
    };
    #[pymodule_export]
    use crate::overlong::{
        completion_mask_i32, completion_mask_i32_to_bool, completion_mask_i32_to_i32, completion_mask_i64,
        completion_mask_i64_to_bool, completion_mask_i64_to_i32,
    };
    #[pymodule_export]
    use crate::packing::{
        balance_partitions, cu_seqlens, gather_u16, gather_u32, gather_u64, gather_u8, pack_plan, position_ids,
    };
    #[pymodule_export]
    use crate::rewards::SoftOverlong;
    #[pymodule_export]
    use crate::rows::{concat_lists, pack_rows};
    #[pymodule_export]
    use crate::select::{top_k_per_group_f32, top_k_per_group_f64};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("build_profile", if cfg!(debug_assertions) { "debug" } else { "release" })?;
        Ok(())
    }
}
