//! Bindings for `fastalign_core::packing`.

use fastalign_core::packing::{self, Strategy};
use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::arrays::{slice1, slice1_mut};
use crate::detach::run_detached;
use crate::errors::{bad_argument, Result};

type I64Array<'py> = Bound<'py, PyArray1<i64>>;

/// `(piece_row, piece_skip, piece_len, out_offsets, bin_bounds | None, tokens_truncated, rows_split, rows_empty)`
type PlanTuple<'py> =
    (I64Array<'py>, I64Array<'py>, I64Array<'py>, I64Array<'py>, Option<I64Array<'py>>, i64, i64, i64);

/// Pack rows window by window; see `fastalign_core::packing::pack_plan`.
#[pyfunction]
#[pyo3(signature = (lengths, window_starts, window_ends, seq_length, strategy))]
pub fn pack_plan<'py>(
    py: Python<'py>,
    lengths: PyReadonlyArray1<'py, i64>,
    window_starts: PyReadonlyArray1<'py, i64>,
    window_ends: PyReadonlyArray1<'py, i64>,
    seq_length: i64,
    strategy: &str,
) -> Result<PlanTuple<'py>> {
    let strategy = Strategy::parse(strategy)?;
    let lengths = slice1(&lengths, "lengths")?;
    let starts = slice1(&window_starts, "window_starts")?;
    let ends = slice1(&window_ends, "window_ends")?;
    let plan = run_detached(py, || packing::pack_plan(lengths, starts, ends, seq_length, strategy))?;
    Ok((
        plan.piece_row.into_pyarray(py),
        plan.piece_skip.into_pyarray(py),
        plan.piece_len.into_pyarray(py),
        plan.out_offsets.into_pyarray(py),
        plan.bin_bounds.map(|b| b.into_pyarray(py)),
        plan.tokens_truncated,
        plan.rows_split,
        plan.rows_empty,
    ))
}

/// One list column as `gather` reads it: `(chunks, chunk_bases, row_starts)`, the value arrays
/// of its chunks, where each chunk starts in the column, and where each row starts.
type Column<'py, T> = (Vec<PyReadonlyArray1<'py, T>>, PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>);

/// A plan's pieces, as `pack_plan` returns them: `(piece_row, piece_skip, piece_len)`.
type Pieces<'py> = (PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>);

macro_rules! gather_binding {
    ($t:ty, $name:ident) => {
        /// Gather the planned pieces of one column (values seen as unsigned integers of their width).
        #[pyfunction]
        #[pyo3(signature = (column, pieces, total, out=None))]
        pub fn $name<'py>(
            py: Python<'py>,
            column: Column<'py, $t>,
            pieces: Pieces<'py>,
            total: usize,
            out: Option<Bound<'py, PyArray1<$t>>>,
        ) -> Result<Bound<'py, PyArray1<$t>>> {
            let (chunks, chunk_bases, row_starts) = column;
            let (piece_row, piece_skip, piece_len) = pieces;
            let slices: Vec<&[$t]> = chunks.iter().map(|c| slice1(c, "chunks")).collect::<Result<_>>()?;
            let bases = slice1(&chunk_bases, "chunk_bases")?;
            let starts = slice1(&row_starts, "row_starts")?;
            let rows = slice1(&piece_row, "piece_row")?;
            let skips = slice1(&piece_skip, "piece_skip")?;
            let lens = slice1(&piece_len, "piece_len")?;
            // the caller's output (e.g. a buffer of Arrow's memory pool, which reuses freed memory
            // without new page faults), or one numpy allocates: lazily zeroed by the OS
            let out = match out {
                Some(o) if numpy::PyUntypedArrayMethods::len(&o) == total => o,
                Some(o) => {
                    return Err(bad_argument(
                        "out",
                        format!("holds {} values, expected {total}", numpy::PyUntypedArrayMethods::len(&o)),
                    ))
                }
                None => PyArray1::<$t>::zeros(py, [total], false),
            };
            {
                let mut rw = out.readwrite();
                let dst = slice1_mut(&mut rw, "out")?;
                run_detached(py, || packing::gather(&slices, bases, starts, rows, skips, lens, dst))?;
            }
            Ok(out)
        }
    };
}

gather_binding!(u8, gather_u8);
gather_binding!(u16, gather_u16);
gather_binding!(u32, gather_u32);
gather_binding!(u64, gather_u64);

/// `0..L` per sequence length, concatenated (int64).
#[pyfunction]
pub fn position_ids<'py>(py: Python<'py>, seq_lengths: PyReadonlyArray1<'py, i64>) -> Result<I64Array<'py>> {
    let lens = slice1(&seq_lengths, "seq_lengths")?;
    Ok(run_detached(py, || packing::position_ids(lens))?.into_pyarray(py))
}

/// `[0, cumsum(seq_lengths)...]` as int32.
#[pyfunction]
pub fn cu_seqlens<'py>(py: Python<'py>, seq_lengths: PyReadonlyArray1<'py, i64>) -> Result<Bound<'py, PyArray1<i32>>> {
    let lens = slice1(&seq_lengths, "seq_lengths")?;
    Ok(run_detached(py, || packing::cu_seqlens(lens))?.into_pyarray(py))
}

/// Karmarkar–Karp partition as Python lists: part `p` (parts by decreasing sum) is the list of
/// its items, ascending. `ints` is a list whose entry `i` is the int `i` (the caller keeps it
/// between calls): items below its length are those very objects (a reference each, no new
/// int), the others are made here.
#[pyfunction]
#[pyo3(signature = (lengths, k, equal_size, max_tokens, ints, refine=false))]
pub fn balance_partitions<'py>(
    py: Python<'py>,
    lengths: PyReadonlyArray1<'py, i64>,
    k: usize,
    equal_size: bool,
    max_tokens: Option<i64>,
    ints: &Bound<'py, PyList>,
    refine: bool,
) -> Result<Bound<'py, PyList>> {
    let w = slice1(&lengths, "lengths")?;
    let (items, bounds) = run_detached(py, || {
        let part = if refine {
            packing::balance_partitions_refined(w, k, equal_size, max_tokens)
        } else {
            packing::balance_partitions(w, k, equal_size, max_tokens)
        };
        part.map(|part| packing::group_by_part(&part, k))
    })?;
    let cached = ints.len();
    if items.len() <= cached {
        // Every item index is below n <= cached, so each `get_item` is in bounds (the GIL is
        // held: nothing can shrink the list meanwhile); the lists are built straight from the
        // kept ints, without an intermediate vector (425 -> 392 us at n=16,384).
        let parts = bounds
            .windows(2)
            .map(|b| {
                let members = &items[b[0] as usize..b[1] as usize];
                PyList::new(
                    py,
                    members.iter().map(|&i| {
                        // cannot fail (in bounds); should it, a new int of the same value
                        ints.get_item(i as usize).unwrap_or_else(|_| {
                            let Ok(int) = (i as usize).into_pyobject(py);
                            int.into_any()
                        })
                    }),
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PyList::new(py, parts)?);
    }
    let mut members: Vec<Bound<'py, PyAny>> = Vec::new();
    let parts = bounds
        .windows(2)
        .map(|b| {
            members.clear();
            for &i in &items[b[0] as usize..b[1] as usize] {
                let i = i as usize;
                members.push(if i < cached { ints.get_item(i)? } else { i.into_pyobject(py)?.into_any() });
            }
            PyList::new(py, members.drain(..))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, parts)?)
}
