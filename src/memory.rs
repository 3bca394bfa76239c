//! Gives back to the kernel the memory the allocator holds but no longer
//! uses. A site build allocates far more than the snapshot it leaves (the
//! syntax highlighter's work, every variant compressed, the old snapshot),
//! and glibc keeps what was freed, in each thread's arena, resident for
//! good. Called when such a burst is over, never on the request path: it
//! takes each arena's lock while it walks it.

/// Releases free memory at the top of every heap and the free pages inside
/// them.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
