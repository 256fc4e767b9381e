//! Padding-free attention metadata: position ids and `cu_seqlens` from sequence lengths.

use super::check_named;
use crate::error::{ensure, Error, Result};

/// Position ids for padding-free attention: `0..L` for each sequence length `L`, concatenated.
pub fn position_ids(seq_lengths: &[i64]) -> Result<Vec<i64>> {
    check_named(seq_lengths, "seq_lengths")?;
    let total = seq_lengths.iter().try_fold(0i64, |acc, &l| acc.checked_add(l));
    let Some(total) = total else {
        return Err(Error::new("seq_lengths", "the total length overflows int64"));
    };
    let mut out = Vec::new();
    out.try_reserve_exact(total as usize).map_err(|_| {
        Error::new(
            "seq_lengths",
            format!("{total} position ids ({} bytes) cannot be allocated", (total as u64).saturating_mul(8)),
        )
    })?;
    for &l in seq_lengths {
        out.extend(0..l);
    }
    Ok(out)
}

/// `cu_seqlens` (flash-attn's meaning): `[0, L0, L0 + L1, ...]`, as `i32` like TRL's collator.
pub fn cu_seqlens(seq_lengths: &[i64]) -> Result<Vec<i32>> {
    check_named(seq_lengths, "seq_lengths")?;
    let mut out = Vec::with_capacity(seq_lengths.len() + 1);
    let mut acc = 0i64;
    out.push(0);
    for &l in seq_lengths {
        acc = acc.saturating_add(l);
        ensure!(acc <= i32::MAX as i64, "seq_lengths", "the total {acc} overflows int32 cu_seqlens");
        out.push(acc as i32);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packing::*;

    #[test]
    fn position_ids_and_cu_seqlens() {
        assert_eq!(position_ids(&[3, 0, 2]).unwrap(), vec![0, 1, 2, 0, 1]);
        assert_eq!(cu_seqlens(&[3, 0, 2]).unwrap(), vec![0, 3, 3, 5]);
        assert!(cu_seqlens(&[-1]).is_err());
    }

    #[test]
    fn sums_that_overflow_are_refused_or_handled() {
        const MAX: i64 = i64::MAX;
        assert_eq!(cu_seqlens(&[1, MAX]).unwrap_err().argument, "seq_lengths");
        assert_eq!(position_ids(&[MAX, 1]).unwrap_err().argument, "seq_lengths");
        assert_eq!(position_ids(&[1 << 60]).unwrap_err().argument, "seq_lengths");
        assert_eq!(pack_plan(&[MAX, 1], &[0], &[2], 4, Strategy::Bfd).unwrap_err().argument, "lengths");
        // a fragment end beyond int64: two fragments, no wrap-around
        let p = pack_plan(&[MAX], &[0], &[1], 1 << 62, Strategy::BfdSplit).unwrap();
        assert_eq!(p.piece_len, vec![1 << 62, MAX - (1 << 62)]);
        let p = pack_plan(&[MAX], &[0], &[1], 1 << 62, Strategy::Wrapped).unwrap();
        assert_eq!(p.out_offsets, vec![0, 1 << 62, MAX]);
        // bin capacities beyond 2^32: the descending order still holds
        let p = pack_plan(&[5, (1 << 32) + 5], &[0], &[2], 1 << 34, Strategy::Bfd).unwrap();
        assert_eq!(p.piece_row, vec![1, 0]);
        // too many output rows for a plan
        assert_eq!(pack_plan(&[1 << 40], &[0], &[1], 1, Strategy::Wrapped).unwrap_err().argument, "lengths");
    }
}
