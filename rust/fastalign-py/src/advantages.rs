//! Bindings for `fastalign_core::advantages`.

use fastalign_core::advantages::{
    column_stats, grpo_advantages_into, rloo_advantages, zero_variance_groups, AdvantageOutput, Aggregation,
    GrpoOutputs, GrpoParams, RlooParams, ScaleRewards,
};
use fastalign_core::Real;
use numpy::{
    IntoPyArray, PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString, PyTuple};

use crate::arrays::{numpy_view, out_slice, slice1, slice_rows, uninit1};
use crate::detach::run_detached;
use crate::errors::Result;

/// `(mean, std)` of the summed rewards, then `(mean, std)` of each reward function.
type Metrics = ((f64, f64), Vec<(f64, f64)>);

/// The fields of `fastalign.advantages.Advantages`, in order: `(advantages, std_is_zero,
/// rewards, frac_reward_zero_std, reward_mean, reward_std, reward_func_means, reward_func_stds)`,
/// the last four `None` without metrics.
type AdvantageTuple<'py, T> = (
    Bound<'py, PyArray1<T>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<T>>,
    f64,
    Option<f64>,
    Option<f64>,
    Option<Bound<'py, PyTuple>>,
    Option<Bound<'py, PyTuple>>,
);

/// `(advantages, std_is_zero, rewards)`
type OutputArrays<'py, T> = (Bound<'py, PyArray1<T>>, Bound<'py, PyArray1<bool>>, Bound<'py, PyArray1<T>>);

/// The outputs of an advantage kernel as an [`AdvantageTuple`].
fn advantage_tuple<'py, T: numpy::Element>(
    py: Python<'py>,
    (advantages, std_is_zero, rewards): OutputArrays<'py, T>,
    frac_zero_std: f64,
    metrics: Option<Metrics>,
) -> Result<AdvantageTuple<'py, T>> {
    let (mean, std, means, stds) = match metrics {
        Some(((mean, std), funcs)) => (
            Some(mean),
            Some(std),
            Some(PyTuple::new(py, funcs.iter().map(|f| f.0))?),
            Some(PyTuple::new(py, funcs.iter().map(|f| f.1))?),
        ),
        None => (None, None, None, None),
    };
    Ok((advantages, std_is_zero, rewards, frac_zero_std, mean, std, means, stds))
}

/// Run an advantage kernel and, when asked, the statistics TRL logs for the step.
fn run_with_metrics<'py, T: Real + numpy::Element>(
    py: Python<'py>,
    rewards: &[T],
    k: usize,
    metrics: bool,
    kernel: impl FnOnce() -> fastalign_core::Result<AdvantageOutput<T>> + Send,
) -> Result<AdvantageTuple<'py, T>> {
    let (o, m) = run_detached(py, || {
        let o = kernel()?;
        let m = if metrics { Some((column_stats(&o.rewards, 1)?[0], column_stats(rewards, k)?)) } else { None };
        Ok((o, m))
    })?;
    let arrays = (o.advantages.into_pyarray(py), o.std_is_zero.into_pyarray(py), o.rewards.into_pyarray(py));
    advantage_tuple(py, arrays, o.frac_zero_std, m)
}

/// GRPO advantages of `(n, k)` row-major rewards into arrays numpy allocates (huge pages for
/// large arrays), filled in place.
fn grpo_into_new<'py, T: Real + numpy::Element>(
    py: Python<'py>,
    rewards: &[T],
    k: usize,
    weights: &[T],
    params: &GrpoParams,
    metrics: bool,
) -> Result<AdvantageTuple<'py, T>> {
    let n = rewards.len() / k.max(1);
    let arrays = (uninit1::<T>(py, n), uninit1::<bool>(py, n), uninit1::<T>(py, n));
    let (frac, m) = {
        let (mut a, mut z, mut s) = (arrays.0.readwrite(), arrays.1.readwrite(), arrays.2.readwrite());
        let (a, z, s) = (out_slice(&mut a)?, out_slice(&mut z)?, out_slice(&mut s)?);
        run_detached(py, || {
            let out = GrpoOutputs { advantages: a, std_is_zero: z, rewards: s };
            let frac = grpo_advantages_into(rewards, k, weights, params, out)?;
            let m = if metrics { Some((column_stats(s, 1)?[0], column_stats(rewards, k)?)) } else { None };
            Ok((frac, m))
        })?
    };
    advantage_tuple(py, arrays, frac, m)
}

/// The options of `rloo_advantages`, a dict keyed by `RlooParams`' field names.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct RlooOptions {
    num_generations: usize,
    reward_clip_range: Option<(f64, f64)>,
    beta: f64,
    normalize_advantages: bool,
    eps: f64,
}

impl From<RlooOptions> for RlooParams {
    fn from(o: RlooOptions) -> Self {
        let RlooOptions { num_generations, reward_clip_range, beta, normalize_advantages, eps } = o;
        RlooParams { num_generations, reward_clip_range, beta, normalize_advantages, eps }
    }
}

macro_rules! advantage_bindings {
    ($t:ty, $grpo:ident, $rloo:ident, $zv:ident) => {
        /// GRPO advantages over `(n,)` or `(n, k)` rewards; see `fastalign.advantages.grpo_advantages`.
        #[pyfunction]
        #[pyo3(signature = (rewards, reward_weights, num_generations, scale_rewards, multi_objective_aggregation, eps, metrics))]
        pub fn $grpo<'py>(
            rewards: PyReadonlyArrayDyn<'py, $t>,
            reward_weights: PyReadonlyArray1<'py, $t>,
            num_generations: usize,
            scale_rewards: &str,
            multi_objective_aggregation: &str,
            eps: f64,
            metrics: bool,
        ) -> Result<AdvantageTuple<'py, $t>> {
            let py = rewards.py();
            let params = GrpoParams {
                num_generations,
                scale_rewards: ScaleRewards::parse(scale_rewards)?,
                aggregation: Aggregation::parse(multi_objective_aggregation)?,
                eps,
            };
            let (r, k) = slice_rows(&rewards, "rewards")?;
            let w = slice1(&reward_weights, "reward_weights")?;
            grpo_into_new(py, r, k, w, &params, metrics)
        }

        /// RLOO advantages over `(n,)` or `(n, k)` rewards; see `fastalign.advantages.rloo_advantages`.
        #[pyfunction]
        #[pyo3(signature = (rewards, reward_weights, kl, params, metrics))]
        pub fn $rloo<'py>(
            py: Python<'py>,
            rewards: PyReadonlyArrayDyn<'py, $t>,
            reward_weights: PyReadonlyArray1<'py, $t>,
            kl: Option<PyReadonlyArray1<'py, $t>>,
            params: RlooOptions,
            metrics: bool,
        ) -> Result<AdvantageTuple<'py, $t>> {
            let params = params.into();
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
        ) -> Result<Bound<'py, PyArray1<bool>>> {
            let (r, k) = slice_rows(&rewards, "rewards")?;
            let w = slice1(&reward_weights, "reward_weights")?;
            let out = run_detached(py, || zero_variance_groups(r, k, w, num_generations, atol, rtol))?;
            Ok(out.into_pyarray(py))
        }
    };
}

advantage_bindings!(f32, grpo_advantages_f32, rloo_advantages_f32, zero_variance_groups_f32);
advantage_bindings!(f64, grpo_advantages_f64, rloo_advantages_f64, zero_variance_groups_f64);

// ---------------------------------------------------------------------------------------------
// One-call fast path for `fastalign.advantages.grpo_advantages`.
//
// The public wrapper's checks cost more than the kernel at a few thousand rows. This function
// takes the user's arguments as they are and handles the common, valid case completely in
// Rust: a numpy array or a CPU torch tensor (float32/float64, 1-D or 2-D, C-contiguous, native
// byte order, no autograd), weights `None` or a numpy array of the rewards' dtype (the wrapper
// passes a weights tensor as its numpy view), and options of their exact built-in types. For
// anything else it returns `None` without raising, and the Python wrapper runs its full checks
// (which raise the error that names the argument, or take the torch path for accelerator
// tensors). Both paths run the same kernel on the same memory.

/// The options of the fast path, or `None` when one is not of its exact expected type/value.
fn fast_params(
    num_generations: &Bound<'_, PyAny>,
    scale_rewards: &Bound<'_, PyAny>,
    multi_objective_aggregation: &Bound<'_, PyAny>,
    eps: &Bound<'_, PyAny>,
    metrics: &Bound<'_, PyAny>,
) -> Option<(GrpoParams, bool)> {
    let g: usize = num_generations.cast_exact::<PyInt>().ok()?.extract().ok()?;
    let scale = if let Ok(b) = scale_rewards.cast_exact::<PyBool>() {
        if b.is_true() {
            ScaleRewards::Group
        } else {
            ScaleRewards::None
        }
    } else {
        ScaleRewards::parse(&scale_rewards.cast_exact::<PyString>().ok()?.to_cow().ok()?).ok()?
    };
    let agg = Aggregation::parse(&multi_objective_aggregation.cast_exact::<PyString>().ok()?.to_cow().ok()?).ok()?;
    let eps = eps.cast_exact::<PyFloat>().ok()?.value();
    if !(eps.is_finite() && eps >= 0.0) || g == 0 {
        return None;
    }
    let metrics = metrics.cast_exact::<PyBool>().ok()?.is_true();
    Some((GrpoParams { num_generations: g, scale_rewards: scale, aggregation: agg, eps }, metrics))
}

/// The fast path for rewards of dtype `T` (see the section comment).
fn grpo_fast_typed<'py, T: Real + numpy::Element>(
    py: Python<'py>,
    rewards: &Bound<'py, PyArrayDyn<T>>,
    reward_weights: &Bound<'py, PyAny>,
    params: &GrpoParams,
    metrics: bool,
) -> Result<Option<Bound<'py, PyTuple>>> {
    let Ok(r) = rewards.try_readonly() else { return Ok(None) };
    let k = match r.shape() {
        [_] => 1,
        [_, k] => *k,
        _ => return Ok(None),
    };
    if !r.is_c_contiguous() || !rewards.dtype().is_native_byteorder().unwrap_or(false) {
        return Ok(None);
    }
    let Ok(data) = r.as_slice() else { return Ok(None) };
    let n = r.shape()[0];
    if n == 0 || k == 0 || n % params.num_generations != 0 {
        return Ok(None);
    }
    // weights: None (all ones) or a contiguous 1-D array of the rewards' dtype, finite
    let ones;
    let borrowed;
    let w: &[T] = if reward_weights.is_none() {
        ones = vec![T::ONE; k];
        &ones
    } else {
        let Ok(arr) = reward_weights.cast::<PyArray1<T>>() else { return Ok(None) };
        let Ok(ro) = arr.try_readonly() else { return Ok(None) };
        if !arr.dtype().is_native_byteorder().unwrap_or(false) {
            return Ok(None);
        }
        borrowed = ro;
        match borrowed.as_slice() {
            Ok(s) if s.len() == k && s.iter().all(|x| x.to_f64().is_finite()) => s,
            _ => return Ok(None),
        }
    };
    Ok(Some(grpo_into_new(py, data, k, w, params, metrics)?.into_pyobject(py)?))
}

/// `fastalign.advantages.grpo_advantages` for the common, valid case in one native call, as an
/// [`AdvantageTuple`] of numpy arrays; `None` where the Python wrapper must check (and possibly
/// reject) the arguments itself.
#[pyfunction]
#[pyo3(signature = (rewards, num_generations, scale_rewards, reward_weights, multi_objective_aggregation, eps, metrics))]
pub fn grpo_advantages_fast<'py>(
    rewards: &Bound<'py, PyAny>,
    num_generations: &Bound<'py, PyAny>,
    scale_rewards: &Bound<'py, PyAny>,
    reward_weights: &Bound<'py, PyAny>,
    multi_objective_aggregation: &Bound<'py, PyAny>,
    eps: &Bound<'py, PyAny>,
    metrics: &Bound<'py, PyAny>,
) -> Result<Option<Bound<'py, PyTuple>>> {
    let py = rewards.py();
    let Some((params, metrics)) =
        fast_params(num_generations, scale_rewards, multi_objective_aggregation, eps, metrics)
    else {
        return Ok(None);
    };
    let Some(view) = numpy_view(rewards) else { return Ok(None) };
    if let Ok(a) = view.cast::<PyArrayDyn<f32>>() {
        grpo_fast_typed(py, a, reward_weights, &params, metrics)
    } else if let Ok(a) = view.cast::<PyArrayDyn<f64>>() {
        grpo_fast_typed(py, a, reward_weights, &params, metrics)
    } else {
        Ok(None)
    }
}
