//! Bindings for `fastalign_core::ratios` and `fastalign_core::losses`.
//!
//! Every array arrives flattened to 1-D (a zero-copy view of a contiguous tensor); the layout
//! is `rows` padded rows, or packed sequences given by `cu_seqlens` (int64).

use fastalign_core::losses::{grpo_loss, GrpoInputs, GrpoParams, Level, LossType};
use fastalign_core::ratios::{
    masked_reduce, masked_reduce_backward, vllm_is_ratio, ClipRange, IsMode, Layout, Reduction,
};
use numpy::{
    dtype, PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::arrays::{out_slice, slice1, slice1_mut};
use crate::detach::run_detached;
use crate::errors::Result;

/// A mask of any dtype TRL uses (int64 completion masks, int32, bool, float weights).
pub(crate) enum MaskArray<'py> {
    Bool(PyReadonlyArray1<'py, bool>),
    I64(PyReadonlyArray1<'py, i64>),
    I32(PyReadonlyArray1<'py, i32>),
    F32(PyReadonlyArray1<'py, f32>),
    F64(PyReadonlyArray1<'py, f64>),
}

/// The same variants, extracted by trying each in turn: only used for the error message of an
/// array that is none of them.
#[derive(FromPyObject)]
enum MaskArrayTried<'py> {
    Bool(PyReadonlyArray1<'py, bool>),
    I64(PyReadonlyArray1<'py, i64>),
    I32(PyReadonlyArray1<'py, i32>),
    F32(PyReadonlyArray1<'py, f32>),
    F64(PyReadonlyArray1<'py, f64>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for MaskArray<'py> {
    type Error = PyErr;

    /// Picks the variant from the array's dtype: trying the variants in turn (what the derive
    /// does) formats an error message for every miss, about 5 µs a call for an int64 mask.
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        if let Ok(arr) = obj.cast::<PyUntypedArray>() {
            let dt = arr.dtype();
            if dt.is_equiv_to(&dtype::<i64>(py)) {
                return Ok(MaskArray::I64(obj.extract()?));
            }
            if dt.is_equiv_to(&dtype::<bool>(py)) {
                return Ok(MaskArray::Bool(obj.extract()?));
            }
            if dt.is_equiv_to(&dtype::<i32>(py)) {
                return Ok(MaskArray::I32(obj.extract()?));
            }
            if dt.is_equiv_to(&dtype::<f32>(py)) {
                return Ok(MaskArray::F32(obj.extract()?));
            }
            if dt.is_equiv_to(&dtype::<f64>(py)) {
                return Ok(MaskArray::F64(obj.extract()?));
            }
        }
        Ok(match obj.extract::<MaskArrayTried<'py>>()? {
            MaskArrayTried::Bool(a) => MaskArray::Bool(a),
            MaskArrayTried::I64(a) => MaskArray::I64(a),
            MaskArrayTried::I32(a) => MaskArray::I32(a),
            MaskArrayTried::F32(a) => MaskArray::F32(a),
            MaskArrayTried::F64(a) => MaskArray::F64(a),
        })
    }
}

/// Run `$body` with `$m` bound to the mask's slice, whatever its dtype.
macro_rules! with_mask {
    ($mask:expr, $name:expr, |$m:ident| $body:expr) => {
        match $mask {
            MaskArray::Bool(a) => {
                let $m = slice1(a, $name)?;
                $body
            }
            MaskArray::I64(a) => {
                let $m = slice1(a, $name)?;
                $body
            }
            MaskArray::I32(a) => {
                let $m = slice1(a, $name)?;
                $body
            }
            MaskArray::F32(a) => {
                let $m = slice1(a, $name)?;
                $body
            }
            MaskArray::F64(a) => {
                let $m = slice1(a, $name)?;
                $body
            }
        }
    };
}

fn layout<'a>(tokens: usize, rows: usize, cu: Option<&'a [i64]>, name: &'static str) -> Result<Layout<'a>> {
    Ok(match cu {
        Some(cu) => Layout::packed(cu, tokens)?,
        None => Layout::padded(tokens, rows, name)?,
    })
}

fn opt_slice<'a, T: numpy::Element>(
    a: &'a Option<PyReadonlyArray1<'_, T>>,
    name: &'static str,
) -> Result<Option<&'a [T]>> {
    a.as_ref().map(|a| slice1(a, name)).transpose()
}

/// The arrays of a `grpo_loss` call, flattened to 1-D, in the order of the `fastalign::grpo_loss`
/// op: `(per_token_logps, old_per_token_logps, advantages, mask, ref_per_token_logps,
/// importance_sampling_ratio, sampling_per_token_logps, entropy_mask)`.
#[derive(FromPyObject)]
pub(crate) struct LossArrays<'py, T: numpy::Element>(
    PyReadonlyArray1<'py, T>,
    Option<PyReadonlyArray1<'py, T>>,
    PyReadonlyArray1<'py, T>,
    MaskArray<'py>,
    Option<PyReadonlyArray1<'py, T>>,
    Option<PyReadonlyArray1<'py, T>>,
    Option<PyReadonlyArray1<'py, T>>,
    Option<PyReadonlyArray1<'py, bool>>,
);

/// `fastalign.ops._LossConfig`, read by attribute name: the scalar options of a `grpo_loss` call
/// (TRL's `GRPOConfig` names; `level` is `importance_sampling_level`). Its other fields
/// (`want_grad`, `check_finite`) are not the kernel's: it computes the gradient when given a
/// `grad` array and always refuses NaN.
#[derive(FromPyObject)]
pub(crate) struct LossConfig {
    loss_type: String,
    level: String,
    epsilon_low: f64,
    epsilon_high: f64,
    delta: Option<f64>,
    beta: f64,
    use_bias_correction_kl: bool,
    off_policy_mask_threshold: Option<f64>,
    sapo_temperature_pos: f64,
    sapo_temperature_neg: f64,
    vespo_k_pos: f64,
    vespo_lambda_pos: f64,
    vespo_k_neg: f64,
    vespo_lambda_neg: f64,
    grad_accum: f64,
    max_completion_length: Option<f64>,
    token_denominator: Option<f64>,
}

impl LossConfig {
    fn params(&self) -> fastalign_core::Result<GrpoParams> {
        Ok(GrpoParams {
            loss_type: LossType::parse(&self.loss_type)?,
            level: Level::parse(&self.level)?,
            epsilon_low: self.epsilon_low,
            epsilon_high: self.epsilon_high,
            delta: self.delta,
            beta: self.beta,
            use_bias_correction_kl: self.use_bias_correction_kl,
            off_policy_mask_threshold: self.off_policy_mask_threshold,
            sapo_temperature_pos: self.sapo_temperature_pos,
            sapo_temperature_neg: self.sapo_temperature_neg,
            vespo_k_pos: self.vespo_k_pos,
            vespo_lambda_pos: self.vespo_lambda_pos,
            vespo_k_neg: self.vespo_k_neg,
            vespo_lambda_neg: self.vespo_lambda_neg,
            grad_accum: self.grad_accum,
            max_completion_length: self.max_completion_length,
            token_denominator: self.token_denominator,
        })
    }
}

/// `(logp_diff_mean, logp_diff_max, ratio_min, ratio_mean, ratio_max, raw_min, raw_mean, raw_max)`
type IsStatsTuple = (f64, f64, f64, f64, f64, f64, f64, f64);
/// `(clip low mean, high mean, region mean, low min, high max, cispo clip ratio, kl, phi mean)`
type LossMetricsTuple = (f64, f64, f64, f64, f64, f64, f64, f64);

macro_rules! loss_bindings {
    ($t:ty, $reduce:ident, $reduce_bw:ident, $is:ident, $grpo:ident) => {
        /// Per-sequence masked sum/mean/max; see `fastalign.ratios.masked_reduce`.
        #[pyfunction]
        #[pyo3(signature = (values, minus, mask, rows, cu_seqlens, reduction))]
        pub fn $reduce<'py>(
            py: Python<'py>,
            values: PyReadonlyArray1<'py, $t>,
            minus: Option<PyReadonlyArray1<'py, $t>>,
            mask: Option<MaskArray<'py>>,
            rows: usize,
            cu_seqlens: Option<PyReadonlyArray1<'py, i64>>,
            reduction: &str,
        ) -> Result<Bound<'py, PyArray1<$t>>> {
            let red = Reduction::parse(reduction)?;
            let x = slice1(&values, "values")?;
            let y = opt_slice(&minus, "minus")?;
            let cu = cu_seqlens.as_ref().map(|c| slice1(c, "cu_seqlens")).transpose()?;
            let lay = layout(x.len(), rows, cu, "values")?;
            let out = PyArray1::<$t>::zeros(py, lay.rows(), false);
            {
                let mut w = out.readwrite();
                let o = out_slice(&mut w)?;
                match &mask {
                    None => run_detached(py, || masked_reduce::<$t, bool>(x, y, None, &lay, red, o))?,
                    Some(mask) => {
                        with_mask!(mask, "mask", |m| run_detached(py, || masked_reduce(x, y, Some(m), &lay, red, o))?)
                    }
                }
            }
            Ok(out)
        }

        /// Gradient of the masked sum/mean with respect to the values.
        #[pyfunction]
        #[pyo3(signature = (grad, mask, tokens, cu_seqlens, reduction))]
        pub fn $reduce_bw<'py>(
            py: Python<'py>,
            grad: PyReadonlyArray1<'py, $t>,
            mask: Option<MaskArray<'py>>,
            tokens: usize,
            cu_seqlens: Option<PyReadonlyArray1<'py, i64>>,
            reduction: &str,
        ) -> Result<Bound<'py, PyArray1<$t>>> {
            let red = Reduction::parse(reduction)?;
            let g = slice1(&grad, "grad")?;
            let cu = cu_seqlens.as_ref().map(|c| slice1(c, "cu_seqlens")).transpose()?;
            let lay = layout(tokens, g.len(), cu, "values")?;
            let out = PyArray1::<$t>::zeros(py, tokens, false);
            {
                let mut w = out.readwrite();
                let o = out_slice(&mut w)?;
                match &mask {
                    None => run_detached(py, || masked_reduce_backward::<$t, bool>(g, None, &lay, red, o))?,
                    Some(mask) => with_mask!(mask, "mask", |m| run_detached(py, || masked_reduce_backward(
                        g,
                        Some(m),
                        &lay,
                        red,
                        o
                    ))?),
                }
            }
            Ok(out)
        }

        /// TRL's vLLM TIS/MIS ratio and its statistics; see `fastalign.ratios.vllm_is_ratio`.
        #[pyfunction]
        #[pyo3(signature = (old, sampling, mask, rows, cu_seqlens, mode, clip_range))]
        pub fn $is<'py>(
            old: PyReadonlyArray1<'py, $t>,
            sampling: PyReadonlyArray1<'py, $t>,
            mask: MaskArray<'py>,
            rows: usize,
            cu_seqlens: Option<PyReadonlyArray1<'py, i64>>,
            mode: &str,
            clip_range: (Option<f64>, Option<f64>),
        ) -> Result<(Bound<'py, PyArray1<$t>>, IsStatsTuple)> {
            let py = old.py();
            let mode = IsMode::parse(mode)?;
            let clip = ClipRange { min: clip_range.0, max: clip_range.1 };
            let o = slice1(&old, "old_per_token_logps")?;
            let s = slice1(&sampling, "sampling_per_token_logps")?;
            let cu = cu_seqlens.as_ref().map(|c| slice1(c, "cu_seqlens")).transpose()?;
            let lay = layout(o.len(), rows, cu, "old_per_token_logps")?;
            let out = PyArray1::<$t>::zeros(py, if mode.sequence { lay.rows() } else { lay.tokens() }, false);
            let st = {
                let mut w = out.readwrite();
                let r = out_slice(&mut w)?;
                with_mask!(&mask, "mask", |m| run_detached(py, || vllm_is_ratio(o, s, m, &lay, mode, clip, r))?)
            };
            Ok((
                out,
                (
                    st.logp_diff_mean,
                    st.logp_diff_max,
                    st.ratio_min,
                    st.ratio_mean,
                    st.ratio_max,
                    st.raw_min,
                    st.raw_mean,
                    st.raw_max,
                ),
            ))
        }

        /// The fused GRPO-family loss: `(loss, metrics)`, the gradient written into `grad` (every
        /// element, so it may be uninitialised) when given; see `fastalign.losses.grpo_loss`.
        #[pyfunction]
        #[pyo3(signature = (arrays, rows, cu_seqlens, config, grad))]
        pub fn $grpo<'py>(
            py: Python<'py>,
            arrays: LossArrays<'py, $t>,
            rows: usize,
            cu_seqlens: Option<PyReadonlyArray1<'py, i64>>,
            config: LossConfig,
            grad: Option<PyReadwriteArray1<'py, $t>>,
        ) -> Result<(f64, LossMetricsTuple)> {
            let params = config.params()?;
            let LossArrays(logps, old, advantages, mask, ref_logps, is_ratio, sampling, entropy_mask) = arrays;
            let lp = slice1(&logps, "per_token_logps")?;
            let (old_s, ref_s) =
                (opt_slice(&old, "old_per_token_logps")?, opt_slice(&ref_logps, "ref_per_token_logps")?);
            let (is_s, samp_s) =
                (opt_slice(&is_ratio, "importance_sampling_ratio")?, opt_slice(&sampling, "sampling_per_token_logps")?);
            let ent = entropy_mask.as_ref().map(|a| slice1(a, "entropy_mask")).transpose()?;
            let adv = slice1(&advantages, "advantages")?;
            let cu = cu_seqlens.as_ref().map(|c| slice1(c, "cu_seqlens")).transpose()?;
            let lay = layout(lp.len(), rows, cu, "per_token_logps")?;
            let (loss, m) = {
                let mut w = grad;
                let g: &mut [$t] = match w.as_mut() {
                    Some(w) => slice1_mut(w, "grad")?,
                    None => &mut [],
                };
                with_mask!(&mask, "mask", |m| {
                    let inp = GrpoInputs {
                        logps: lp,
                        old_logps: old_s,
                        advantages: adv,
                        mask: m,
                        ref_logps: ref_s,
                        importance_sampling_ratio: is_s,
                        sampling_logps: samp_s,
                        entropy_mask: ent,
                    };
                    run_detached(py, || grpo_loss(&inp, &lay, &params, g))?
                })
            };
            let mt = (
                m.clip_low_mean,
                m.clip_high_mean,
                m.clip_region_mean,
                m.clip_low_min,
                m.clip_high_max,
                m.cispo_clip_ratio,
                m.kl,
                m.phi_seq_mean,
            );
            Ok((loss, mt))
        }
    };
}

loss_bindings!(f32, masked_reduce_f32, masked_reduce_backward_f32, vllm_is_ratio_f32, grpo_loss_f32);
loss_bindings!(f64, masked_reduce_f64, masked_reduce_backward_f64, vllm_is_ratio_f64, grpo_loss_f64);
