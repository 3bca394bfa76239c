//! Runs each activity as a named task and keeps it running: a task that fails
//! or panics is logged with its name, counted, and restarted after a backoff
//! that doubles up to a cap (and resets once the task has run for a while).
//! On shutdown the tasks are asked to stop and awaited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::shutdown::Shutdown;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before failing starts again from the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

type RestartCounter = (&'static str, Arc<AtomicU64>);

/// Restart counts per task name, for logs and metrics.
#[derive(Default, Clone)]
pub struct TaskRegistry {
    tasks: Arc<Mutex<Vec<RestartCounter>>>,
}

impl TaskRegistry {
    fn register(&self, name: &'static str) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        self.tasks
            .lock()
            .expect("registry poisoned")
            .push((name, counter.clone()));
        counter
    }

    /// (task name, restarts so far) for every supervised task.
    pub fn restarts(&self) -> Vec<(&'static str, u64)> {
        self.tasks
            .lock()
            .expect("registry poisoned")
            .iter()
            .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
            .collect()
    }
}

pub struct Supervisor {
    shutdown: Shutdown,
    /// How long a task may take to stop after shutdown before it is aborted.
    stop_deadline: Duration,
    handles: Vec<JoinHandle<()>>,
    pub registry: TaskRegistry,
}

impl Supervisor {
    pub fn new(shutdown: Shutdown, stop_deadline: Duration) -> Supervisor {
        Supervisor {
            shutdown,
            stop_deadline,
            handles: Vec::new(),
            registry: TaskRegistry::default(),
        }
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Runs `make()` as task `name` until shutdown, restarting it when it ends early.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        let stop_deadline = self.stop_deadline;
        let restarts = self.registry.register(name);
        self.handles.push(tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                let mut task = tokio::spawn(make());
                let outcome = tokio::select! {
                    outcome = &mut task => outcome,
                    () = shutdown.wait() => {
                        // Tasks watch the same signal and finish their own work
                        // (draining connections); one that hangs is cut off.
                        if tokio::time::timeout(stop_deadline, &mut task).await.is_err() {
                            tracing::warn!(task = name, "task did not stop within {stop_deadline:?}; aborting it");
                            task.abort();
                        }
                        return;
                    }
                };
                if shutdown.is_triggered() {
                    return;
                }
                match outcome {
                    Ok(Ok(())) => tracing::error!(task = name, "task stopped on its own; restarting it"),
                    Ok(Err(e)) => tracing::error!(task = name, "task failed: {e:#}; restarting it"),
                    Err(e) if e.is_panic() => tracing::error!(task = name, "task panicked: {}; restarting it", panic_message(e)),
                    Err(_) => return,
                }
                restarts.fetch_add(1, Ordering::Relaxed);
                if started.elapsed() >= STABLE_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }));
    }

    /// Triggers shutdown and waits for every task to finish.
    pub async fn stop(self) {
        self.shutdown.trigger();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failing_and_panicking_tasks_are_restarted_with_backoff() {
        let mut supervisor = Supervisor::new(Shutdown::new(), Duration::from_secs(1));
        let runs = Arc::new(AtomicU64::new(0));
        let counter = runs.clone();
        let (done_tx, mut done) = tokio::sync::mpsc::channel(1);
        supervisor.spawn("flaky", move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let done_tx = done_tx.clone();
            async move {
                match n {
                    0 => anyhow::bail!("first run fails"),
                    1 => panic!("second run panics"),
                    _ => {
                        done_tx.send(()).await.unwrap();
                        std::future::pending::<anyhow::Result<()>>().await
                    }
                }
            }
        });
        let started = Instant::now();
        done.recv().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(supervisor.registry.restarts(), vec![("flaky", 2)]);
        // 100 ms after the failure, then 200 ms after the panic.
        assert!(started.elapsed() >= Duration::from_millis(300));
        supervisor.stop().await;
    }
}
