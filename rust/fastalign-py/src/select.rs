//! Bindings for `fastalign_core::select`.

use fastalign_core::select::{top_k_per_group, Keep};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::arrays::slice1;
use crate::detach::run_detached;
use crate::errors::Result;

macro_rules! select_bindings {
    ($t:ty, $name:ident) => {
        /// Kept row indices per group; see `fastalign.advantages.top_k_per_group`.
        #[pyfunction]
        #[pyo3(signature = (scores, num_generations, k, keep))]
        pub fn $name<'py>(
            py: Python<'py>,
            scores: PyReadonlyArray1<'py, $t>,
            num_generations: usize,
            k: usize,
            keep: &str,
        ) -> Result<Bound<'py, PyArray1<i64>>> {
            let keep = Keep::parse(keep)?;
            let s = slice1(&scores, "scores")?;
            let out = run_detached(py, || top_k_per_group(s, num_generations, k, keep))?;
            Ok(out.into_pyarray(py))
        }
    };
}

select_bindings!(f32, top_k_per_group_f32);
select_bindings!(f64, top_k_per_group_f64);
