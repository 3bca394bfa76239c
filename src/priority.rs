//! Serving first. The serving cores ([`crate::net::Cores`]) keep the
//! process's CPU priority; the threads of the main runtime, which run
//! everything else (statistics flushes and roll-ups, site rebuilds,
//! certificate orders, the control socket), run at a lower one. When the
//! machine is saturated a flush or a rebuild then waits for readers, not
//! the other way round; when it is not, nothing changes. (A nice of 5 still
//! leaves those threads a third of a core's share: they are slowed, never
//! starved.)

/// How much lower, in nice steps.
const BACKGROUND_NICE: i32 = 5;

/// Lowers the calling thread's priority; for the main runtime's threads.
/// Raising it back needs privileges quire does not ask for, so a thread
/// that calls this stays background for good.
pub fn background_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority act on the calling thread only (Linux
    // keeps a nice value per thread) and touch no memory of ours.
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, thread);
        libc::setpriority(
            libc::PRIO_PROCESS,
            thread,
            (current + BACKGROUND_NICE).min(19),
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn nice_of_this_thread() -> i32 {
        // SAFETY: as above; reads the calling thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn a_background_thread_runs_below_the_others_and_alone() {
        let before = nice_of_this_thread();
        let lowered = std::thread::spawn(|| {
            super::background_thread();
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + super::BACKGROUND_NICE).min(19));
        assert_eq!(nice_of_this_thread(), before, "other threads keep theirs");
    }
}
