//! Runs each [`Activity`] as a named task and keeps it running: a task that
//! fails or panics is logged with its name, counted, and restarted from a
//! fresh clone of the activity after a backoff that doubles up to a cap (and
//! resets once the task has run for a while). On shutdown the tasks are asked
//! to stop and awaited.

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

/// A long-running part of the server. The supervisor keeps the activity and
/// runs a clone of it each time, so a restart starts from the state it was
/// built with: whatever a run needs afresh it makes in [`Activity::run`].
pub trait Activity: Clone + Send + 'static {
    /// The task's name in logs and the restart counts.
    fn name(&self) -> &'static str;

    /// Runs until `shutdown`; returning earlier, with or without an error, is
    /// a failure the supervisor restarts.
    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send + 'static;
}

/// Something an activity prepares before its first run so that nothing is
/// missed meanwhile (a file watch set up before the first read): the first
/// run takes it, a restart prepares its own.
pub struct Prepared<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Prepared<T> {
    fn clone(&self) -> Self {
        Prepared(self.0.clone())
    }
}

impl<T> Prepared<T> {
    pub fn new(first: Option<T>) -> Prepared<T> {
        Prepared(Arc::new(Mutex::new(first)))
    }

    /// The prepared value if no run has taken it yet.
    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

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

    /// Runs `activity` until shutdown, restarting it when it ends early.
    pub fn spawn(&mut self, activity: impl Activity) {
        let name = activity.name();
        let shutdown = self.shutdown.clone();
        let stop_deadline = self.stop_deadline;
        let restarts = self.registry.register(name);
        self.handles.push(tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                let mut task = tokio::spawn(activity.clone().run(shutdown.clone()));
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
        let (done_tx, mut done) = tokio::sync::mpsc::channel(1);
        supervisor.spawn(Flaky {
            runs: runs.clone(),
            done: done_tx,
        });
        let started = Instant::now();
        done.recv().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(supervisor.registry.restarts(), vec![("flaky", 2)]);
        // 100 ms after the failure, then 200 ms after the panic.
        assert!(started.elapsed() >= Duration::from_millis(300));
        supervisor.stop().await;
    }

    /// Fails, then panics, then runs until stopped.
    #[derive(Clone)]
    struct Flaky {
        runs: Arc<AtomicU64>,
        done: tokio::sync::mpsc::Sender<()>,
    }

    impl Activity for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
            match self.runs.fetch_add(1, Ordering::SeqCst) {
                0 => anyhow::bail!("first run fails"),
                1 => panic!("second run panics"),
                _ => {
                    self.done.send(()).await.unwrap();
                    shutdown.wait().await;
                    Ok(())
                }
            }
        }
    }

    #[test]
    fn a_prepared_value_goes_to_the_first_run_only() {
        let prepared = Prepared::new(Some(7));
        let restart = prepared.clone();
        assert_eq!(prepared.take(), Some(7));
        assert_eq!(restart.take(), None);
    }
}
