//! Packed rows for padding-free forwards.
//!
//! Ragged sequences (one flat token buffer plus offsets) are laid end to end in rows. For each
//! row the model needs the tokens, position ids that restart at 0 for every sequence, and the
//! next-token label of every position (`-100` where nothing is scored); the loss needs to know
//! where each scored token's label landed, in the loss's own sequence order. All of it comes out
//! of one pass here, so nothing is padded and nothing is built per row in Python.
//!
//! Token `k` of a sequence is *scored* when `k >= 1` and its target flag is set (no flags: every
//! `k >= 1`). Its log-probability is read at position `k - 1`, whose label is token `k`; the
//! first token of a sequence is never scored, since nothing precedes it.

use crate::error::{ensure, Error, Result};

/// Rows of packed sequences; see [`pack_rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRows {
    /// `(T,)` the tokens of every row, rows one after another.
    pub input_ids: Vec<i64>,
    /// `(T,)` `0..L` for each placed sequence.
    pub position_ids: Vec<i64>,
    /// `(T,)` token `j + 1` of the same sequence where it is scored, else `-100`.
    pub shift_labels: Vec<i64>,
    /// `(R + 1,)` row `r` holds segments `bin_offsets[r]..bin_offsets[r + 1]`.
    pub bin_offsets: Vec<i64>,
    /// `(P + 1,)` flat start of each placed sequence (segment), in row order; the last entry is `T`.
    pub segment_offsets: Vec<i64>,
    /// `(N,)` flat position of each scored token's label, sequence after sequence in `loss_order`.
    pub score_index: Vec<i64>,
    /// `(M + 1,)` scored tokens of the `loss_order` sequences, cumulated.
    pub score_offsets: Vec<i64>,
}

/// Lay the sequences of `order` end to end, `bin_offsets` saying where each row starts, and
/// index their scored tokens in `loss_order`.
///
/// * `values`, `offsets`: the ragged sequences (`offsets` starts at 0, never decreases and ends
///   at `values.len()`).
/// * `targets`: one flag per value, or `None` for "every token from the second on".
/// * `order`: the sequences to place, row after row; each at most once.
/// * `bin_offsets`: `(R + 1,)` from 0 to `order.len()`, non-decreasing.
/// * `loss_order`: the sequences of `order` (each once, in any order) plus, optionally, empty
///   sequences that are placed nowhere (they score nothing).
pub fn pack_rows(
    values: &[i64],
    offsets: &[i64],
    targets: Option<&[u8]>,
    order: &[i64],
    bin_offsets: &[i64],
    loss_order: &[i64],
) -> Result<PackedRows> {
    let n_seq = check_offsets(offsets, values.len())?;
    if let Some(t) = targets {
        ensure!(t.len() == values.len(), "targets", "has {} flags for {} tokens", t.len(), values.len());
    }
    check_bins(bin_offsets, order.len())?;

    // where each placed sequence starts in the flat buffer (-1: not placed)
    let mut start = vec![-1i64; n_seq];
    let mut total = 0i64;
    for (i, &s) in order.iter().enumerate() {
        let s = sequence_index(s, n_seq, i, "order")?;
        ensure!(start[s] < 0, "order", "places sequence {s} twice (again at index {i})");
        start[s] = total;
        total += offsets[s + 1] - offsets[s];
    }
    let t = total as usize;
    let mut input_ids = Vec::with_capacity(t);
    let mut position_ids = Vec::with_capacity(t);
    let mut shift_labels = Vec::with_capacity(t);
    let mut segment_offsets = Vec::with_capacity(order.len() + 1);
    for &s in order {
        let s = s as usize;
        let (a, b) = (offsets[s] as usize, offsets[s + 1] as usize);
        segment_offsets.push(input_ids.len() as i64);
        input_ids.extend_from_slice(&values[a..b]);
        position_ids.extend(0..(b - a) as i64);
        if b > a {
            for k in a + 1..b {
                let scored = targets.is_none_or(|f| f[k] != 0);
                shift_labels.push(if scored { values[k] } else { -100 });
            }
            shift_labels.push(-100);
        }
    }
    segment_offsets.push(total);

    let mut seen = vec![false; n_seq];
    let mut score_index = Vec::new();
    let mut score_offsets = Vec::with_capacity(loss_order.len() + 1);
    score_offsets.push(0i64);
    for (i, &s) in loss_order.iter().enumerate() {
        let s = sequence_index(s, n_seq, i, "loss_order")?;
        ensure!(!seen[s], "loss_order", "names sequence {s} twice (again at index {i})");
        seen[s] = true;
        let (a, b) = (offsets[s] as usize, offsets[s + 1] as usize);
        if start[s] < 0 {
            ensure!(b == a, "loss_order", "names sequence {s}, which is not placed in any row and is not empty");
        } else {
            let f = start[s];
            for k in a + 1..b {
                if targets.is_none_or(|flags| flags[k] != 0) {
                    score_index.push(f + (k - a) as i64 - 1);
                }
            }
        }
        score_offsets.push(score_index.len() as i64);
    }
    if let Some(s) = order.iter().find(|&&s| !seen[s as usize]) {
        return Err(Error::new("loss_order", format!("leaves out sequence {s}, which is placed in a row")));
    }
    Ok(PackedRows {
        input_ids,
        position_ids,
        shift_labels,
        bin_offsets: bin_offsets.to_vec(),
        segment_offsets,
        score_index,
        score_offsets,
    })
}

/// `s` (entry `i` of `argument`) as an index below `n_seq`.
fn sequence_index(s: i64, n_seq: usize, i: usize, argument: &'static str) -> Result<usize> {
    ensure!(
        (0..n_seq as i64).contains(&s),
        argument,
        "holds {s} at index {i}, expected a sequence index in [0, {n_seq})"
    );
    Ok(s as usize)
}

/// Number of sequences, after checking that `offsets` describes `len` values.
fn check_offsets(offsets: &[i64], len: usize) -> Result<usize> {
    ensure!(!offsets.is_empty(), "offsets", "is empty, expected (S + 1,) offsets starting at 0");
    ensure!(offsets[0] == 0, "offsets", "starts at {}, expected 0", offsets[0]);
    if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::new(
            "offsets",
            format!("decreases at index {} ({} after {})", i + 1, offsets[i + 1], offsets[i]),
        ));
    }
    let last = offsets[offsets.len() - 1];
    ensure!(last == len as i64, "offsets", "ends at {last}, expected the number of values ({len})");
    Ok(offsets.len() - 1)
}

fn check_bins(bin_offsets: &[i64], placed: usize) -> Result<()> {
    ensure!(!bin_offsets.is_empty(), "bin_offsets", "is empty, expected (R + 1,) offsets starting at 0");
    ensure!(bin_offsets[0] == 0, "bin_offsets", "starts at {}, expected 0", bin_offsets[0]);
    if let Some(i) = bin_offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::new("bin_offsets", format!("decreases at index {}", i + 1)));
    }
    let last = bin_offsets[bin_offsets.len() - 1];
    ensure!(last == placed as i64, "bin_offsets", "ends at {last}, expected the length of order ({placed})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sequences [10 11 12], [20 21], [30], [] ; targets: the last two tokens of each
    fn fixture() -> (Vec<i64>, Vec<i64>, Vec<u8>) {
        (vec![10, 11, 12, 20, 21, 30], vec![0, 3, 5, 6, 6], vec![0, 1, 1, 1, 1, 1])
    }

    #[test]
    fn rows_labels_and_score_index() {
        let (v, o, t) = fixture();
        // row 0: seq 1 then seq 0; row 1: seq 2; loss order 0, 1, 2, 3 (3 empty, unplaced)
        let p = pack_rows(&v, &o, Some(&t), &[1, 0, 2], &[0, 2, 3], &[0, 1, 2, 3]).unwrap();
        assert_eq!(p.input_ids, vec![20, 21, 10, 11, 12, 30]);
        assert_eq!(p.position_ids, vec![0, 1, 0, 1, 2, 0]);
        assert_eq!(p.shift_labels, vec![21, -100, 11, 12, -100, -100]);
        assert_eq!(p.segment_offsets, vec![0, 2, 5, 6]);
        // seq 0's tokens 1, 2 are labels at flat 2, 3; seq 1's token 1 at flat 0
        assert_eq!(p.score_index, vec![2, 3, 0]);
        assert_eq!(p.score_offsets, vec![0, 2, 3, 3, 3]);
    }

    #[test]
    fn no_targets_scores_every_token_but_the_first() {
        let (v, o, _) = fixture();
        let p = pack_rows(&v, &o, None, &[0, 1], &[0, 2], &[1, 0]).unwrap();
        assert_eq!(p.shift_labels, vec![11, 12, -100, 21, -100]);
        assert_eq!(p.score_index, vec![3, 0, 1]);
        assert_eq!(p.score_offsets, vec![0, 1, 3]);
    }

    #[test]
    fn bad_input_names_the_argument() {
        let (v, o, t) = fixture();
        let arg = |r: Result<PackedRows>| r.unwrap_err().argument;
        assert_eq!(arg(pack_rows(&v, &[0, 3, 2, 6], None, &[0], &[0, 1], &[0])), "offsets");
        assert_eq!(arg(pack_rows(&v, &[0, 3, 5], None, &[0], &[0, 1], &[0])), "offsets");
        assert_eq!(arg(pack_rows(&v, &o, Some(&t[..3]), &[0], &[0, 1], &[0])), "targets");
        assert_eq!(arg(pack_rows(&v, &o, None, &[0, 0], &[0, 2], &[0])), "order");
        assert_eq!(arg(pack_rows(&v, &o, None, &[7], &[0, 1], &[7])), "order");
        assert_eq!(arg(pack_rows(&v, &o, None, &[0, 1], &[0, 1], &[0, 1])), "bin_offsets");
        assert_eq!(arg(pack_rows(&v, &o, None, &[0, 1], &[0, 2], &[0])), "loss_order");
        assert_eq!(arg(pack_rows(&v, &o, None, &[0], &[0, 1], &[0, 1])), "loss_order");
        assert_eq!(arg(pack_rows(&v, &o, None, &[0], &[0, 1], &[0, 0])), "loss_order");
    }
}
