//! Scattered writes from several threads into one output: the packer's gather, when every
//! thread reads a compact range of rows but writes them to bins all over the output.
//!
//! This is the crate's only `unsafe` code: a raw view of a `&mut [T]` that several threads may
//! write through, each to ranges no other write touches. Bounds are checked on every write;
//! disjointness is the caller's obligation, stated at the one call site.

use std::marker::PhantomData;

/// A `&mut [T]` lent to several threads at once for writes to disjoint ranges.
pub(crate) struct Scatter<'a, T> {
    ptr: *mut T,
    len: usize,
    _out: PhantomData<&'a mut [T]>,
}

// SAFETY: a `Scatter` is a `&mut [T]` shared for writes only; sending or sharing it across
// threads is sound for `T: Send` as long as the writes do not overlap, which `write`'s contract
// requires.
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for Scatter<'_, T> {}
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Scatter<'_, T> {}

impl<'a, T: Copy> Scatter<'a, T> {
    pub(crate) fn new(out: &'a mut [T]) -> Self {
        Scatter { ptr: out.as_mut_ptr(), len: out.len(), _out: PhantomData }
    }

    /// Copies `src` to `out[at..at + src.len()]`; panics if that is out of bounds.
    ///
    /// # Safety
    /// While this `Scatter` lives, no other call (on any thread) may write a range that
    /// overlaps this one.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn write(&self, at: usize, src: &[T]) {
        assert!(at <= self.len && src.len() <= self.len - at, "Scatter::write out of bounds");
        // SAFETY: `at..at + src.len()` lies inside the borrowed output (checked above), no other
        // write touches it (the caller's contract), and `src` cannot overlap the output, which
        // is mutably borrowed for `'a`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_writes_from_several_threads_fill_the_output() {
        // plain scoped threads (Miri checks them; rayon's epoch GC trips Stacked Borrows there)
        let src: Vec<u32> = (0..1000).collect();
        let mut out = vec![0u32; 1000];
        {
            let scatter = Scatter::new(&mut out);
            // blocks of 10 in a shuffled order, the even-numbered ones on one thread
            let blocks: Vec<usize> = (0..100).map(|b| (b * 37) % 100).collect();
            std::thread::scope(|s| {
                for parity in 0..2 {
                    let (scatter, src, blocks) = (&scatter, &src, &blocks);
                    s.spawn(move || {
                        for &b in blocks.iter().filter(|&&b| b % 2 == parity) {
                            // SAFETY: block `b` covers `10 * b..10 * b + 10`; blocks are distinct
                            #[allow(unsafe_code)]
                            unsafe {
                                scatter.write(10 * b, &src[10 * b..10 * b + 10])
                            };
                        }
                    });
                }
            });
        }
        assert_eq!(out, src);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn out_of_bounds_write_panics() {
        let mut out = vec![0u8; 4];
        let scatter = Scatter::new(&mut out);
        // SAFETY: a single write; it is refused before any memory is touched
        #[allow(unsafe_code)]
        unsafe {
            scatter.write(3, &[1, 2])
        };
    }
}
