//! One shutdown signal shared by every activity: triggered once (SIGINT, SIGTERM
//! or a test), observed by anyone holding a clone; and the other signals
//! `quire serve` answers (SIGHUP, SIGUSR2).

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    triggered: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            triggered: watch::Sender::new(false),
        }
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        self.triggered.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.triggered.borrow()
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.triggered.subscribe();
        async move {
            // The sender lives in `self`'s clones; if all are gone nobody can
            // trigger, which we treat as shutting down.
            let _ = rx.wait_for(|t| *t).await;
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The signals are watched from this
/// call on, not from the first poll: a signal that arrives while the server
/// is still starting is not lost (or fatal).
pub fn os_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::error!("cannot listen for {name}: {e}");
            None
        }
    };
    let interrupt = watch(SignalKind::interrupt(), "Ctrl-C");
    let terminate = watch(SignalKind::terminate(), "SIGTERM");
    async move {
        let next = |signal: Option<tokio::signal::unix::Signal>| async move {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = next(interrupt) => {}
            () = next(terminate) => {}
        }
    }
}

/// One message per SIGHUP (reload the configuration).
pub fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    every(
        tokio::signal::unix::SignalKind::hangup(),
        "SIGHUP (config reload)",
    )
}

/// One message per SIGUSR2 (upgrade to the binary now installed).
pub fn upgrade_signals() -> tokio::sync::mpsc::Receiver<()> {
    every(
        tokio::signal::unix::SignalKind::user_defined2(),
        "SIGUSR2 (upgrade)",
    )
}

/// One message per `kind` of signal; one already queued covers the next.
/// When the signal cannot be watched, the channel stays empty and the
/// reason is logged.
fn every(kind: tokio::signal::unix::SignalKind, what: &str) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    match tokio::signal::unix::signal(kind) {
        Ok(mut signals) => {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    let _ = tx.try_send(());
                }
            });
        }
        Err(e) => tracing::error!("cannot listen for {what}: {e}"),
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_resolves_after_trigger_even_if_subscribed_late() {
        let s = Shutdown::new();
        let early = s.wait();
        s.trigger();
        early.await;
        s.wait().await;
        assert!(s.is_triggered());
    }
}
