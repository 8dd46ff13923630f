//! A global allocator that tallies the allocations made on each thread, for the tests that
//! check the logging path allocates nothing per record. Included by a test crate with
//! `#[path = "common/counting_alloc.rs"] mod counting_alloc;` (it installs itself as that
//! crate's global allocator).
//!
//! A thread's line chunks (64 KiB each, four in rotation; `pipeline::line`) are reclaimed once
//! the consumer has taken their lines. When the machine is so loaded that the worker falls more
//! than three chunks behind, the thread takes a fresh chunk rather than wait: at most one
//! allocation per chunk of lines, never one per record. Allocations of a chunk's size or more
//! are therefore counted apart ([`chunks`]) from all others ([`allocations`]).

// A global allocator cannot be written without `unsafe`; the library itself forbids it.
#![allow(unsafe_code, dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The size of a thread's line chunk (`pipeline::line::CHUNK`).
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static CHUNKS: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    let counter = if size >= CHUNK_BYTES {
        &CHUNKS
    } else {
        &ALLOCATIONS
    };
    let _ = counter.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, which upholds
// the `GlobalAlloc` contract; the thread-local counters are `const`-initialised `Cell`s whose
// access never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's `layout` contract is passed on to `System`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward every allocation).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made so far on this thread, other than line chunks.
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Line-chunk-sized allocations made so far on this thread.
pub(crate) fn chunks() -> u64 {
    CHUNKS.with(Cell::get)
}
