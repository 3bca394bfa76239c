//! The serving cores: a thread per CPU, each running a single-threaded tokio
//! runtime of its own, as nginx runs a worker per core. Every listener
//! accepts on every core, and a connection lives its whole life on the core
//! that accepted it: its tasks never move between threads, so answering a
//! request wakes no other thread. The rest of the server (certificates,
//! statistics, the control socket) stays on the main runtime.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The runtimes connections are served on; cheap to clone. The threads stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Cores(Arc<Threads>);

struct Threads {
    handles: Vec<Handle>,
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
            handles,
            _stops: stops,
        })))
    }

    /// Serve on the runtime of the caller, for commands that serve briefly
    /// and for tests.
    pub fn current() -> Cores {
        Cores(Arc::new(Threads {
            handles: vec![Handle::current()],
            _stops: Vec::new(),
        }))
    }

    pub fn handles(&self) -> &[Handle] {
        &self.0.handles
    }
}
