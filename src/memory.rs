//! How the process keeps its memory small: glibc's allocator is told to give
//! large blocks their own mappings, returned to the kernel when freed, and
//! to give back what it holds free once a burst of allocation is over.
//!
//! By default glibc raises its mmap threshold each time a large block is
//! freed, up to 32 MiB; after a site build (every page compressed three
//! ways, the highlighter's work) every later large block comes from the
//! heap, and what the build freed stays resident for good: half the idle
//! server's anonymous memory (bench/memory.sh: 16.7 -> 8.4 MiB, with no
//! change in HTTP/2 throughput at this threshold; at 64 KiB the mmap calls
//! cost 8%).

/// Blocks at least this large get a mapping of their own.
const OWN_MAPPING_FROM: i32 = 256 * 1024;

/// Fixes the allocator's thresholds; call first thing, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; called before
    // other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM);
    }
}

/// Releases free memory at the top of every heap and the free pages inside
/// them. Never on the request path: it takes each arena's lock while it
/// walks it.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
