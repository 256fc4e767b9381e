//! Completion masks and truncation flags, as GRPOTrainer builds them (TRL 1.16.0).
//!
//! A row of `completion_ids` is kept up to and including its first EOS token; a row with no
//! EOS is kept whole. A completion is "truncated" when its kept part does not end in an EOS
//! or pad token, which for a whole row means its last token is not the pad token.

use crate::error::{ensure, Result};

/// Token-id element types the kernels accept.
pub trait TokenId: Copy + PartialEq + Send + Sync + 'static {
    /// `Some(v)` when `v` fits this type (an id that does not fit can never occur in the data).
    fn from_i64(v: i64) -> Option<Self>;
}
impl TokenId for i32 {
    fn from_i64(v: i64) -> Option<Self> {
        i32::try_from(v).ok()
    }
}
impl TokenId for i64 {
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
}

/// Element types a mask can be written as (`int64` like TRL's `completion_mask`, `int32`
/// like the mask `_generate_single_turn` builds, or `bool`).
pub trait MaskElem: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
}
impl MaskElem for i64 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
}
impl MaskElem for i32 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
}
impl MaskElem for bool {
    const ZERO: Self = false;
    const ONE: Self = true;
}

/// Outputs of [`completion_mask`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionMask {
    /// `(b, t)` row-major, 1 up to and including the first EOS, 0 after; rows of truncated
    /// completions are all 0 when `mask_truncated_completions` is set. `int64` like TRL's.
    pub mask: Vec<i64>,
    /// `(b,)` whether each completion was truncated (its kept part ends in neither EOS nor pad).
    pub is_truncated: Vec<bool>,
    /// `(b,)` kept length of each completion (EOS included), before truncation masking.
    pub lengths: Vec<i64>,
    /// Sum of `mask`: TRL's `num_items_in_batch` for this (local) batch.
    pub num_items: i64,
}

/// Index of the first element of `row` that is in `eos`, scanning 32 tokens at a time so the
/// common "no EOS in this block" case runs as a vectorised compare.
#[inline(always)]
fn first_eos<I: TokenId>(row: &[I], eos: &[I]) -> Option<usize> {
    const BLOCK: usize = 32;
    let hit = |x: I| eos.contains(&x);
    let mut base = 0;
    for block in row.chunks(BLOCK) {
        let any = match eos {
            [] => false,
            [e] => block.iter().fold(false, |acc, &x| acc | (x == *e)),
            [e0, e1] => block.iter().fold(false, |acc, &x| acc | (x == *e0) | (x == *e1)),
            _ => block.iter().any(|&x| hit(x)),
        };
        if any {
            return block.iter().position(|&x| hit(x)).map(|p| base + p);
        }
        base += block.len();
    }
    None
}

/// Build the completion mask from right-padded `(b, t)` generated ids.
pub fn completion_mask<I: TokenId>(
    completion_ids: &[I],
    t: usize,
    eos_token_ids: &[i64],
    pad_token_id: i64,
    mask_truncated_completions: bool,
) -> Result<CompletionMask> {
    let mut mask = vec![0i64; completion_ids.len()];
    let rows = completion_mask_into(
        completion_ids,
        t,
        eos_token_ids,
        pad_token_id,
        mask_truncated_completions,
        &mut mask,
        true,
    )?;
    Ok(CompletionMask { mask, is_truncated: rows.is_truncated, lengths: rows.lengths, num_items: rows.num_items })
}

/// The per-row outputs of [`completion_mask_into`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRows {
    pub is_truncated: Vec<bool>,
    pub lengths: Vec<i64>,
    pub num_items: i64,
}

/// [`completion_mask`] writing the `(b, t)` mask into a caller's buffer (e.g. one that numpy
/// allocated, with huge pages). With `zeroed` the buffer is known to hold zeros and only the
/// ones are written; otherwise every element is written.
pub fn completion_mask_into<I: TokenId, M: MaskElem>(
    completion_ids: &[I],
    t: usize,
    eos_token_ids: &[i64],
    pad_token_id: i64,
    mask_truncated_completions: bool,
    mask: &mut [M],
    zeroed: bool,
) -> Result<MaskRows> {
    ensure!(t >= 1, "completion_ids", "has no columns; expected shape (batch, length) with length >= 1");
    ensure!(
        completion_ids.len() % t == 0,
        "completion_ids",
        "length {} is not a multiple of t={t}",
        completion_ids.len()
    );
    let b = completion_ids.len() / t;
    ensure!(b >= 1, "completion_ids", "is empty; expected at least one completion");
    ensure!(
        mask.len() == completion_ids.len(),
        "mask",
        "has {} elements, expected {}",
        mask.len(),
        completion_ids.len()
    );
    let eos: Vec<I> = eos_token_ids.iter().filter_map(|&e| I::from_i64(e)).collect();
    let pad = I::from_i64(pad_token_id);

    let mut is_truncated = vec![false; b];
    let mut lengths = vec![0i64; b];
    let rule = RowRule { t, eos: &eos, pad, mask_truncated_completions, zeroed };
    let rows = |ids: &[I], mask: &mut [M], truncated: &mut [bool], lengths: &mut [i64]| -> i64 {
        mask_rows(ids, &rule, mask, truncated, lengths)
    };
    // Large batches are split into blocks of whole rows over fastalign's pool: writing the
    // mask is bound by page faults and memory bandwidth, both of which scale with threads.
    let num_items = match crate::par::pool_for(b * t) {
        None => rows(completion_ids, mask, &mut is_truncated, &mut lengths),
        Some(pool) => {
            use rayon::prelude::*;
            let per = crate::par::units_per_task(b, pool);
            pool.install(|| {
                completion_ids
                    .par_chunks(per * t)
                    .zip(mask.par_chunks_mut(per * t))
                    .zip(is_truncated.par_chunks_mut(per))
                    .zip(lengths.par_chunks_mut(per))
                    .map(|(((ids, m), tr), l)| rows(ids, m, tr, l))
                    .sum()
            })
        }
    };
    Ok(MaskRows { is_truncated, lengths, num_items })
}

/// How [`mask_rows`] reads a row and writes its mask, the same for every row of a call.
struct RowRule<'e, I> {
    /// row length
    t: usize,
    /// the EOS ids that fit in `I`
    eos: &'e [I],
    /// the pad id, if it fits in `I`
    pad: Option<I>,
    mask_truncated_completions: bool,
    /// the mask holds zeros already: only the ones are written
    zeroed: bool,
}

/// Fill the mask rows of a block of completions; return the number of ones written.
/// (Compiled for AVX2 too: the EOS scan is a 64-bit compare, which baseline SSE2 lacks.)
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.2"))]
fn mask_rows<I: TokenId, M: MaskElem>(
    ids: &[I],
    rule: &RowRule<'_, I>,
    mask: &mut [M],
    is_truncated: &mut [bool],
    lengths: &mut [i64],
) -> i64 {
    let RowRule { t, eos, pad, mask_truncated_completions, zeroed } = *rule;
    let mut items = 0i64;
    for (((row, out), trunc), len_out) in
        ids.chunks_exact(t).zip(mask.chunks_exact_mut(t)).zip(is_truncated.iter_mut()).zip(lengths.iter_mut())
    {
        let (len, truncated) = match first_eos(row, eos) {
            Some(p) => (p + 1, false),
            None => (t, Some(row[t - 1]) != pad),
        };
        *trunc = truncated;
        *len_out = len as i64;
        let keep = if truncated && mask_truncated_completions { 0 } else { len };
        out[..keep].fill(M::ONE);
        if !zeroed {
            out[keep..].fill(M::ZERO);
        }
        items += keep as i64;
    }
    items
}

/// Truncation flags from unpadded completions given as their last token: a completion is
/// truncated when its last token is neither an EOS nor the pad token (TRL's `is_truncated`).
pub fn is_truncated_last<I: TokenId>(last_tokens: &[I], eos_token_ids: &[i64], pad_token_id: i64) -> Vec<bool> {
    let mut stop: Vec<I> = eos_token_ids.iter().filter_map(|&e| I::from_i64(e)).collect();
    stop.extend(I::from_i64(pad_token_id));
    last_tokens.iter().map(|x| !stop.contains(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_includes_first_eos() {
        // eos = 2, pad = 0
        let ids: [i64; 12] = [
            5, 6, 2, 0, //
            5, 2, 2, 0, //
            5, 6, 7, 8,
        ];
        let m = completion_mask(&ids, 4, &[2], 0, false).unwrap();
        assert_eq!(m.mask, vec![1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1]);
        assert_eq!(m.is_truncated, vec![false, false, true]);
        assert_eq!(m.lengths, vec![3, 2, 4]);
        assert_eq!(m.num_items, 9);
        let m = completion_mask(&ids, 4, &[2], 0, true).unwrap();
        assert_eq!(&m.mask[8..], &[0, 0, 0, 0]);
        assert_eq!(m.num_items, 5);
    }

    #[test]
    fn pad_at_end_is_not_truncated_and_several_eos() {
        let ids: [i32; 8] = [5, 6, 7, 0, 5, 9, 7, 7];
        let m = completion_mask(&ids, 4, &[2, 9], 0, false).unwrap();
        assert_eq!(m.is_truncated, vec![false, false]);
        assert_eq!(m.lengths, vec![4, 2]);
    }

    #[test]
    fn long_rows_cross_blocks() {
        let mut ids = vec![1i64; 100];
        ids[70] = 2;
        let m = completion_mask(&ids, 100, &[2], 0, false).unwrap();
        assert_eq!(m.lengths, vec![71]);
        let m = completion_mask(&ids, 100, &[3, 4, 2], 0, false).unwrap();
        assert_eq!(m.lengths, vec![71]);
    }

    #[test]
    fn ids_that_do_not_fit_never_match() {
        let ids: [i32; 2] = [1, 2];
        let m = completion_mask(&ids, 2, &[1 << 40], 2, false).unwrap();
        assert_eq!(m.lengths, vec![2]);
        assert_eq!(m.is_truncated, vec![false]);
    }

    #[test]
    fn parallel_blocks_equal_one_serial_pass() {
        // 1M ids: above the parallel threshold, so the pool splits the rows into blocks
        let (b, t) = (256usize, 4096usize);
        let mut x = 12345u64;
        let ids: Vec<i64> = (0..b * t)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) % 4000) as i64
            })
            .collect();
        for mask_truncated in [false, true] {
            let got = completion_mask(&ids, t, &[7, 9], 0, mask_truncated).unwrap();
            let (mut m, mut tr, mut l) = (vec![0i64; b * t], vec![false; b], vec![0i64; b]);
            let rule =
                RowRule { t, eos: &[7, 9], pad: Some(0), mask_truncated_completions: mask_truncated, zeroed: true };
            let items = mask_rows(&ids, &rule, &mut m, &mut tr, &mut l);
            assert_eq!((got.mask, got.is_truncated, got.lengths, got.num_items), (m, tr, l, items));
        }
    }

    #[test]
    fn into_a_dirty_buffer_writes_every_element() {
        let ids: [i64; 6] = [5, 2, 0, 5, 6, 7];
        let mut buf = [9i64; 6];
        let rows = completion_mask_into(&ids, 3, &[2], 0, true, &mut buf, false).unwrap();
        assert_eq!(buf, [1, 1, 0, 0, 0, 0]);
        assert_eq!(rows.num_items, 2);
        assert_eq!(completion_mask_into(&ids, 3, &[2], 0, true, &mut [0i64; 5], true).unwrap_err().argument, "mask");
    }

    #[test]
    fn empty_is_error() {
        assert_eq!(completion_mask::<i64>(&[], 4, &[2], 0, false).unwrap_err().argument, "completion_ids");
        assert_eq!(completion_mask::<i64>(&[], 0, &[2], 0, false).unwrap_err().argument, "completion_ids");
    }
}
