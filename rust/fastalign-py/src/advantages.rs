//! Bindings for `fastalign_core::advantages`.

use fastalign_core::advantages::{
    column_stats, grpo_advantages_into, rloo_advantages, zero_variance_groups, AdvantageOutput, Aggregation,
    GrpoOutputs, GrpoParams, RlooParams, ScaleRewards,
};
use fastalign_core::Real;
use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn};
use pyo3::prelude::*;

use crate::arrays::{slice1, slice_rows};
use crate::detach::run_detached;
use crate::errors::invalid_argument;

/// `(mean, std)` of the summed rewards, then `(mean, std)` of each reward function.
type Metrics = ((f64, f64), Vec<(f64, f64)>);

/// `(advantages, std_is_zero, rewards, frac_zero_std, metrics or None)`
type AdvantageTuple<'py, T> =
    (Bound<'py, PyArray1<T>>, Bound<'py, PyArray1<bool>>, Bound<'py, PyArray1<T>>, f64, Option<Metrics>);

/// Run an advantage kernel and, when asked, the statistics TRL logs for the step.
fn run_with_metrics<'py, T: Real + numpy::Element>(
    py: Python<'py>,
    rewards: &[T],
    k: usize,
    metrics: bool,
    kernel: impl FnOnce() -> fastalign_core::Result<AdvantageOutput<T>> + Send,
) -> PyResult<AdvantageTuple<'py, T>> {
    let (o, m) = run_detached(py, || {
        let o = kernel()?;
        let m = if metrics { Some((column_stats(&o.rewards, 1)?[0], column_stats(rewards, k)?)) } else { None };
        Ok((o, m))
    })?;
    Ok((o.advantages.into_pyarray(py), o.std_is_zero.into_pyarray(py), o.rewards.into_pyarray(py), o.frac_zero_std, m))
}

macro_rules! advantage_bindings {
    ($t:ty, $grpo:ident, $rloo:ident, $zv:ident) => {
        /// GRPO advantages over `(n,)` or `(n, k)` rewards; see `fastalign.advantages.grpo_advantages`.
        #[pyfunction]
        #[pyo3(signature = (rewards, reward_weights, num_generations, scale_rewards, multi_objective_aggregation, eps, metrics))]
        #[allow(clippy::too_many_arguments)]
        pub fn $grpo<'py>(
            py: Python<'py>,
            rewards: PyReadonlyArrayDyn<'py, $t>,
            reward_weights: PyReadonlyArray1<'py, $t>,
            num_generations: usize,
            scale_rewards: &str,
            multi_objective_aggregation: &str,
            eps: f64,
            metrics: bool,
        ) -> PyResult<AdvantageTuple<'py, $t>> {
            let params = GrpoParams {
                num_generations,
                scale_rewards: ScaleRewards::parse(scale_rewards).map_err(|e| invalid_argument(py, e))?,
                aggregation: Aggregation::parse(multi_objective_aggregation).map_err(|e| invalid_argument(py, e))?,
                eps,
            };
            let (r, k) = slice_rows(&rewards, "rewards")?;
            let w = slice1(&reward_weights, "reward_weights")?;
            // Outputs are allocated by numpy (huge pages for large arrays) and filled in place.
            let n = r.len() / k.max(1);
            let adv = PyArray1::<$t>::zeros(py, n, false);
            let zero = PyArray1::<bool>::zeros(py, n, false);
            let sums = PyArray1::<$t>::zeros(py, n, false);
            let (frac, m) = {
                let (mut a, mut z, mut s) = (adv.readwrite(), zero.readwrite(), sums.readwrite());
                let internal = |_| crate::errors::bad_argument(py, "output", "is not contiguous");
                let (a, z, s) = (a.as_slice_mut().map_err(internal)?, z.as_slice_mut().map_err(internal)?, s.as_slice_mut().map_err(internal)?);
                run_detached(py, || {
                    let out = GrpoOutputs { advantages: a, std_is_zero: z, rewards: s };
                    let frac = grpo_advantages_into(r, k, w, &params, out)?;
                    let m = if metrics { Some((column_stats(s, 1)?[0], column_stats(r, k)?)) } else { None };
                    Ok((frac, m))
                })?
            };
            Ok((adv, zero, sums, frac, m))
        }

        /// RLOO advantages over `(n,)` or `(n, k)` rewards; see `fastalign.advantages.rloo_advantages`.
        #[pyfunction]
        #[pyo3(signature = (rewards, reward_weights, num_generations, kl, beta, reward_clip_range, normalize_advantages, eps, metrics))]
        #[allow(clippy::too_many_arguments)]
        pub fn $rloo<'py>(
            py: Python<'py>,
            rewards: PyReadonlyArrayDyn<'py, $t>,
            reward_weights: PyReadonlyArray1<'py, $t>,
            num_generations: usize,
            kl: Option<PyReadonlyArray1<'py, $t>>,
            beta: f64,
            reward_clip_range: Option<(f64, f64)>,
            normalize_advantages: bool,
            eps: f64,
            metrics: bool,
        ) -> PyResult<AdvantageTuple<'py, $t>> {
            let params = RlooParams { num_generations, reward_clip_range, beta, normalize_advantages, eps };
            let (r, k) = slice_rows(&rewards, "rewards")?;
            let w = slice1(&reward_weights, "reward_weights")?;
            let kl = kl.as_ref().map(|a| slice1(a, "kl")).transpose()?;
            run_with_metrics(py, r, k, metrics, || rloo_advantages(r, k, w, kl, &params))
        }

        /// Per-group "no learning signal" flags; see `fastalign.advantages.zero_variance_groups`.
        #[pyfunction]
        #[pyo3(signature = (rewards, reward_weights, num_generations, atol, rtol))]
        pub fn $zv<'py>(
            py: Python<'py>,
            rewards: PyReadonlyArrayDyn<'py, $t>,
            reward_weights: PyReadonlyArray1<'py, $t>,
            num_generations: usize,
            atol: f64,
            rtol: f64,
        ) -> PyResult<Bound<'py, PyArray1<bool>>> {
            let (r, k) = slice_rows(&rewards, "rewards")?;
            let w = slice1(&reward_weights, "reward_weights")?;
            let out = run_detached(py, || zero_variance_groups(r, k, w, num_generations, atol, rtol))?;
            Ok(out.into_pyarray(py))
        }
    };
}

advantage_bindings!(f32, grpo_advantages_f32, rloo_advantages_f32, zero_variance_groups_f32);
advantage_bindings!(f64, grpo_advantages_f64, rloo_advantages_f64, zero_variance_groups_f64);
