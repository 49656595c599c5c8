//! Which worker the current thread is, so hot-path measurements go to that worker's own shard.
//!
//! With `workers: N` every worker thread runs its own current-thread runtime and sets its index once; every
//! other thread (the caller's runtime, the admin listener) is worker 0. A request is served entirely on the
//! thread that accepted its connection, so two workers never touch the same shard.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `index`.
pub(crate) fn set_current(index: usize) {
    INDEX.with(|cell| cell.set(index));
}

/// The current thread's worker index (0 outside worker threads).
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}
