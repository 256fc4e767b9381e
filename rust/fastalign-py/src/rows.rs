//! Bindings for `fastalign_core::rows`, and the one place Python token lists become arrays.

use fastalign_core::rows;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::arrays::slice1;
use crate::detach::run_detached;
use crate::errors::{bad_argument, Result};
use crate::pylist;

type I64Array<'py> = Bound<'py, PyArray1<i64>>;

/// `(values, offsets, part)`: sequence `i` is `parts[0][i] + parts[1][i] + ...`; `part[t]` says
/// which of the lists token `t` came from.
type Concat<'py> = (I64Array<'py>, I64Array<'py>, Bound<'py, PyArray1<u8>>);

/// Append the ints of one Python list or tuple (or any sequence of ints) to `out`.
fn extend_ints(item: &Bound<'_, PyAny>, out: &mut Vec<i64>, name: &'static str, row: usize) -> Result<usize> {
    let bad = |what: String| bad_argument(name, format!("row {row}: {what}"));
    let before = out.len();
    let int =
        |x: &Bound<'_, PyAny>| x.extract::<i64>().map_err(|_| bad(format!("expected ints, got {}", type_name(x))));
    if !pylist::extend_i64(item, out, int)? {
        let v: Vec<i64> =
            item.extract().map_err(|_| bad(format!("expected a list of ints, got {}", type_name(item))))?;
        out.extend_from_slice(&v);
    }
    Ok(out.len() - before)
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".to_owned())
}

/// Join lists of token lists sequence by sequence into one flat buffer.
#[pyfunction]
pub fn concat_lists<'py>(py: Python<'py>, parts: Vec<Vec<Bound<'py, PyAny>>>) -> Result<Concat<'py>> {
    const NAME: &str = "parts";
    let n = parts.first().map_or(0, |r| r.len());
    if let Some((i, r)) = parts.iter().enumerate().find(|(_, r)| r.len() != n) {
        return Err(bad_argument(NAME, format!("list {i} has {} sequences, list 0 has {n}", r.len())));
    }
    let mut values = Vec::new();
    let mut part = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i64);
    for i in 0..n {
        for (k, r) in parts.iter().enumerate() {
            let added = extend_ints(&r[i], &mut values, NAME, i)?;
            part.extend(std::iter::repeat_n(k as u8, added));
        }
        offsets.push(values.len() as i64);
    }
    Ok((values.into_pyarray(py), offsets.into_pyarray(py), part.into_pyarray(py)))
}

/// `(input_ids, position_ids, shift_labels, bin_offsets, segment_offsets, score_index, score_offsets)`
type RowsTuple<'py> =
    (I64Array<'py>, I64Array<'py>, I64Array<'py>, I64Array<'py>, I64Array<'py>, I64Array<'py>, I64Array<'py>);

/// Packed rows; see `fastalign_core::rows::pack_rows`.
#[pyfunction]
#[pyo3(signature = (values, offsets, targets, order, bin_offsets, loss_order))]
pub fn pack_rows<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, i64>,
    offsets: PyReadonlyArray1<'py, i64>,
    targets: Option<PyReadonlyArray1<'py, u8>>,
    order: PyReadonlyArray1<'py, i64>,
    bin_offsets: PyReadonlyArray1<'py, i64>,
    loss_order: PyReadonlyArray1<'py, i64>,
) -> Result<RowsTuple<'py>> {
    let v = slice1(&values, "values")?;
    let o = slice1(&offsets, "offsets")?;
    let t = targets.as_ref().map(|t| slice1(t, "targets")).transpose()?;
    let ord = slice1(&order, "order")?;
    let bins = slice1(&bin_offsets, "bin_offsets")?;
    let loss = slice1(&loss_order, "loss_order")?;
    let p = run_detached(py, || rows::pack_rows(v, o, t, ord, bins, loss))?;
    Ok((
        p.input_ids.into_pyarray(py),
        p.position_ids.into_pyarray(py),
        p.shift_labels.into_pyarray(py),
        p.bin_offsets.into_pyarray(py),
        p.segment_offsets.into_pyarray(py),
        p.score_index.into_pyarray(py),
        p.score_offsets.into_pyarray(py),
    ))
}
