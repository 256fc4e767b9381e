//! Parallelism policy: one dedicated thread pool, used only for large inputs.
//!
//! * The pool is fastalign's own (not rayon's global pool), sized by `FASTALIGN_NUM_THREADS`
//!   or, by default, the number of CPUs this process may use.
//! * Work is split into blocks of whole rows or whole groups, each computed exactly as the
//!   serial code would: results are bit-identical whatever the thread count.
//! * Fork safety: a pool's threads do not survive `fork()` (DataLoader workers, multiprocessing).
//!   The pool remembers the process that built it; a forked child runs serially instead of
//!   waiting on threads that no longer exist.

use std::sync::OnceLock;

use rayon::ThreadPool;

/// Below this many elements of work, a call runs on the calling thread: waking the pool costs
/// more than it saves.
pub(crate) const MIN_PARALLEL_WORK: usize = 1 << 19;

static POOL: OnceLock<Option<(u32, ThreadPool)>> = OnceLock::new();

/// Threads fastalign uses for large inputs: `FASTALIGN_NUM_THREADS` if set (>= 1), otherwise
/// the available parallelism.
pub fn num_threads() -> usize {
    std::env::var("FASTALIGN_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The pool, when parallelism is enabled and this is the process that created it.
pub(crate) fn pool() -> Option<&'static ThreadPool> {
    let entry = POOL.get_or_init(|| {
        let n = num_threads();
        if n <= 1 {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("fastalign-{i}"))
            .build()
            .ok()
            .map(|p| (std::process::id(), p))
    });
    match entry {
        Some((pid, pool)) if *pid == std::process::id() => Some(pool),
        _ => None,
    }
}

/// The pool if `work` elements are worth spreading over it.
pub(crate) fn pool_for(work: usize) -> Option<&'static ThreadPool> {
    if work >= MIN_PARALLEL_WORK {
        pool()
    } else {
        None
    }
}

/// Rows (or groups) per parallel task: about four tasks per thread, at least one unit.
pub(crate) fn units_per_task(units: usize, pool: &ThreadPool) -> usize {
    units.div_ceil(4 * pool.current_num_threads()).max(1)
}
