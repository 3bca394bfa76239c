//! The serving cores: a thread per CPU, each running a single-threaded tokio
//! runtime of its own, as nginx runs a worker per core. Every listener
//! accepts on every core, and a connection lives its whole life on the core
//! that accepted it, or on the one it was handed to: a core that already
//! holds more connections than another passes a newcomer on, since
//! whichever thread wakes first takes the accept, and a burst would
//! otherwise land on one core for its whole life (an HTTP/2 client's 64
//! connections split 48 to 16 ran at three quarters of the speed). After
//! that a connection's tasks never move between threads, so answering a
//! request wakes no other thread. The rest of the server (certificates,
//! statistics, the control socket) stays on the main runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The runtimes connections are served on; cheap to clone. The threads stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Cores(Arc<Threads>);

struct Threads {
    handles: Vec<Handle>,
    /// Open connections per core, every listener's.
    open: Vec<AtomicUsize>,
    /// Dropping these lets each thread's runtime return and shut down.
    _stops: Vec<oneshot::Sender<()>>,
}

impl Cores {
    /// One serving thread per CPU the process may use.
    pub fn per_cpu() -> std::io::Result<Cores> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        Cores::start(count)
    }

    /// `count` serving threads, named `quire-core-N`.
    pub fn start(count: usize) -> std::io::Result<Cores> {
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("quire-core-{index}"))
                .spawn(move || {
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Cores(Arc::new(Threads {
            open: handles.iter().map(|_| AtomicUsize::new(0)).collect(),
            handles,
            _stops: stops,
        })))
    }

    /// Serve on the runtime of the caller, for commands that serve briefly
    /// and for tests.
    pub fn current() -> Cores {
        Cores(Arc::new(Threads {
            handles: vec![Handle::current()],
            open: vec![AtomicUsize::new(0)],
            _stops: Vec::new(),
        }))
    }

    pub fn handles(&self) -> &[Handle] {
        &self.0.handles
    }

    /// Where a connection accepted on core `here` should be served: here,
    /// unless here holds more than one connection more than the core with
    /// the fewest. Counted from the moment a core is chosen, so a burst
    /// accepted at once is spread as it is taken.
    pub fn place(&self, here: usize) -> Placed {
        let open = |core: usize| self.0.open[core].load(Ordering::Relaxed);
        let fewest = (0..self.0.open.len())
            .min_by_key(|&core| open(core))
            .unwrap_or(here);
        let core = if open(here) > open(fewest) + 1 {
            fewest
        } else {
            here
        };
        self.0.open[core].fetch_add(1, Ordering::Relaxed);
        Placed {
            cores: self.clone(),
            core,
        }
    }
}

/// A connection counted on its core until dropped.
pub struct Placed {
    cores: Cores,
    pub core: usize,
}

impl Placed {
    pub fn runtime(&self) -> &Handle {
        &self.cores.0.handles[self.core]
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.cores.0.open[self.core].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(cores: &Cores) -> Vec<usize> {
        cores
            .0
            .open
            .iter()
            .map(|o| o.load(Ordering::Relaxed))
            .collect()
    }

    #[test]
    fn a_burst_accepted_on_one_core_is_spread_over_all() {
        let cores = Cores::start(3).unwrap();
        let placed: Vec<Placed> = (0..9).map(|_| cores.place(0)).collect();
        assert_eq!(counts(&cores), [4, 3, 2]);
        drop(placed);
        assert_eq!(counts(&cores), [0, 0, 0]);
    }

    #[test]
    fn a_core_one_connection_ahead_keeps_its_newcomer() {
        let cores = Cores::start(2).unwrap();
        let _first = cores.place(1);
        let second = cores.place(1);
        assert_eq!(second.core, 1);
        assert_eq!(counts(&cores), [0, 2]);
        let third = cores.place(1);
        assert_eq!(third.core, 0);
    }
}
