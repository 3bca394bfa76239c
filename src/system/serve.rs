//! `quire serve` as a process: starts the server, announces readiness
//! (sd_notify, or to the process it replaces), then waits on the signals:
//! SIGTERM stops, SIGHUP reloads, SIGUSR2 or `quire upgrade` hands over to
//! the binary now installed (see [`crate::upgrade`]).

use tokio::sync::oneshot;

use super::{Inheritance, PredecessorState, RunningServer, start_with};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::control::server::UpgradeRequest;
use crate::net::Inherited;
use crate::reload::Trigger;
use crate::upgrade::notify::{Notification, Status};
use crate::upgrade::{self, Launch, Predecessor, Successor, UpgradeError};

/// `quire serve`: runs until SIGINT or SIGTERM; SIGHUP reloads the config;
/// SIGUSR2 (or `quire upgrade`) hands over to the binary now installed.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let env = &crate::config::process_env;
    // Noted now: an upgrade replaces the file this process was started from.
    let launch = Launch::current();
    let predecessor = Predecessor::from_env(env)?;
    let sockets = Inherited::from_env(env, std::process::id(), predecessor.is_some())?;
    let (exited_tx, exited_rx) = oneshot::channel::<()>();
    let inheritance = Inheritance {
        sockets,
        predecessor: predecessor.as_ref().map(|p| PredecessorState {
            salts: p.salts.clone(),
            exited: Box::pin(async move {
                let _ = exited_rx.await;
            }),
        }),
    };
    // Watched before starting, so that none of them is missed meanwhile.
    let stop = crate::shutdown::os_signal();
    tokio::pin!(stop);
    let mut hangups = crate::shutdown::hangups();
    let mut upgrade_signals = crate::shutdown::upgrade_signals();
    let mut server = start_with(config, clock, inheritance).await?;
    // Starting (the first build above all) is the largest burst of
    // allocation the server makes.
    crate::memory::release_free();
    let stopped_while_starting = is_done_now(&mut stop);
    match predecessor {
        // Told to stop before serving: the old process keeps the site.
        Some(_) if stopped_while_starting => {
            tracing::info!("stopped before taking over; the previous process keeps serving");
        }
        Some(predecessor) => {
            // If it is gone already, the sockets are ours alone: serve on.
            if let Err(e) = predecessor.announce_ready() {
                tracing::warn!("{e}; serving on without it");
            }
            tokio::spawn(async move {
                predecessor.exited().await;
                let _ = exited_tx.send(());
            });
        }
        None => {
            let status = Status::listening(server.listeners.addresses());
            upgrade::notify::notify(env, &Notification::Ready(&status));
        }
    }

    let mut upgrade_requests = server
        .upgrade_requests
        .take()
        .expect("a new server has its upgrade requests");
    let successor = loop {
        if stopped_while_starting {
            break None;
        }
        let reply: Option<UpgradeRequest> = tokio::select! {
            () = &mut stop => break None,
            Some(()) = hangups.recv() => {
                let reloader = server.reloader.clone();
                // The reloader logs its outcome.
                if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(Trigger::Hangup, env)).await {
                    tracing::error!("SIGHUP: the reload failed: {e}");
                }
                continue;
            }
            Some(()) = upgrade_signals.recv() => None,
            Some(reply) = upgrade_requests.recv() => Some(reply),
        };
        tracing::info!("upgrade: starting the binary now installed, on this process's sockets");
        let outcome = match upgrade(&server, &launch, env, stop.as_mut()).await {
            Ok(None) => break None,
            Ok(Some(successor)) => {
                let pid = std::process::id();
                match upgrade::notify::notify(env, &Notification::MainPid(successor.pid)) {
                    true => Ok(successor),
                    false => {
                        // SAFETY: kill(2) on the child this process started.
                        unsafe { libc::kill(successor.pid as libc::pid_t, libc::SIGTERM) };
                        Err(UpgradeError::NotHandedOver {
                            successor: successor.pid,
                            pid,
                        })
                    }
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(successor) => {
                let message = format!(
                    "pid {} has taken over the sockets; pid {} finishes its requests in flight and exits",
                    successor.pid,
                    std::process::id()
                );
                tracing::info!("upgrade: {message}");
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(message));
                }
                break Some(successor);
            }
            Err(e) => {
                tracing::error!("upgrade: {e}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    };
    // Triggered before it is logged, so that whoever reads the log line can
    // count on new connections being refused.
    server.shutdown().trigger();
    match &successor {
        Some(_) => tracing::info!("handing over: no new connections, finishing requests in flight"),
        None => {
            upgrade::notify::notify(env, &Notification::Stopping);
            tracing::info!("shutting down: no new connections, finishing requests in flight");
        }
    }
    server.stop().await;
    tracing::info!("stopped");
    if let Some(successor) = successor {
        successor.hold_until_exit();
    }
    Ok(())
}

/// Whether `future` is already done, without waiting.
fn is_done_now(future: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    future.as_mut().poll(&mut context).is_ready()
}

/// One upgrade: the successor once it serves, or `None` when a stop signal
/// came first (the new process is then stopped too).
async fn upgrade(
    server: &RunningServer,
    launch: &std::io::Result<Launch>,
    env: &dyn Fn(&str) -> Option<String>,
    stop: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<Successor>, UpgradeError> {
    if let Some(refusal) = upgrade::refusal(env, std::process::id()) {
        return Err(refusal);
    }
    // Noted once at start; each upgrade asked for says why it cannot go ahead.
    let launch = launch
        .as_ref()
        .map_err(|e| UpgradeError::UnknownBinary(std::io::Error::new(e.kind(), e.to_string())))?;
    let starting = server.start_successor(launch)?;
    let pid = starting.pid();
    let ready = tokio::task::spawn_blocking(move || starting.wait_ready(upgrade::READY_TIMEOUT));
    tokio::select! {
        ready = ready => match ready {
            Ok(outcome) => outcome.map(Some),
            Err(e) => Err(UpgradeError::Interrupted(e)),
        },
        () = stop => {
            tracing::info!("asked to stop during the upgrade; stopping the new process (pid {pid}) too");
            // SAFETY: kill(2) on the child this process started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            Ok(None)
        }
    }
}
