//! The control socket, `data/control.sock` (0600): how commands reach a
//! running server that owns the work (`quire cert renew` needs its challenge
//! listener; `quire stats` needs its open store, which sled locks). One request
//! line in; the reply runs to the end of the stream and starts with `ok:` or
//! `error:`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::acme::manager::RenewRequest;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::upgrade::sockets::Inherited;

/// What the running server can be asked to do.
#[derive(Clone)]
pub struct Handlers {
    /// The certificate manager, in modes that obtain certificates.
    pub renewals: Option<mpsc::Sender<RenewRequest>>,
    pub stats: Option<Stats>,
    /// The data directory, for backups.
    pub data: PathBuf,
    pub reloader: Option<std::sync::Arc<crate::reload::Reloader>>,
    /// The serving loop, which hands over to a new binary.
    pub upgrades: Option<mpsc::Sender<crate::system::UpgradeRequest>>,
}

/// A renewal may wait on a CA; give it time, but not forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a stopping server waits for control requests it is answering.
const ANSWER_GRACE: Duration = Duration::from_secs(10);

pub fn socket_path(data: &Path) -> PathBuf {
    data.join("control.sock")
}

/// The socket given at start (an upgrade), or a new one bound in `data`,
/// replacing a stale one left by a crash.
pub fn bind(data: &Path, sockets: &mut Inherited) -> anyhow::Result<UnixListener> {
    if let Some(given) = sockets.take_unix("control") {
        return UnixListener::from_std(given).context("using the given control socket");
    }
    crate::acme::store::create_private_dir(data)
        .with_context(|| format!("creating the data directory {}", data.display()))?;
    let path = socket_path(data);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Answers requests until shutdown.
pub async fn serve(
    listener: std::sync::Arc<UnixListener>,
    handlers: Handlers,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stop => break,
            Some(_) = in_flight.join_next() => continue,
            accepted = listener.accept() => accepted.context("accepting on the control socket")?,
        };
        let handlers = handlers.clone();
        in_flight.spawn(async move {
            if let Err(e) = answer(stream, handlers).await {
                tracing::debug!("control request failed: {e:#}");
            }
        });
    }
    // Requests in flight get their answer before the process exits: the
    // reply to `upgrade` is written just as this process starts stopping.
    let answered = async { while in_flight.join_next().await.is_some() {} };
    if tokio::time::timeout(ANSWER_GRACE, answered).await.is_err() {
        tracing::warn!("control requests still unanswered after {ANSWER_GRACE:?}; closing them");
    }
    Ok(())
}

async fn answer(stream: UnixStream, handlers: Handlers) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(read).read_line(&mut line),
    )
    .await
    .context("no request")??;
    let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["renew"] => renew(&handlers, false).await,
        ["renew", "--dry-run"] => renew(&handlers, true).await,
        ["stats", days] => match days.parse::<u32>() {
            Ok(days) => stats(&handlers, days).await,
            Err(_) => Err(format!("`{days}` is not a number of days")),
        },
        ["ping"] => Ok("running".into()),
        ["reload"] => reload(&handlers).await,
        ["upgrade"] => upgrade(&handlers).await,
        ["backup", ..] => backup(&handlers, line.trim().trim_start_matches("backup").trim()).await,
        _ => Err(format!("unknown request `{}`", line.trim())),
    };
    let text = match reply {
        Ok(message) => format!("ok: {message}\n"),
        Err(message) => format!("error: {message}\n"),
    };
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

async fn renew(handlers: &Handlers, dry_run: bool) -> Result<String, String> {
    let Some(renewals) = &handlers.renewals else {
        return Err("this server's mode does not obtain certificates by ACME".into());
    };
    let (reply, outcome) = oneshot::channel();
    renewals
        .send(RenewRequest { dry_run, reply })
        .await
        .map_err(|_| "the certificate manager is not running".to_string())?;
    outcome
        .await
        .unwrap_or_else(|_| Err("the certificate manager stopped before answering".into()))
}

async fn reload(handlers: &Handlers) -> Result<String, String> {
    let Some(reloader) = handlers.reloader.clone() else {
        return Err("this server cannot reload".into());
    };
    tokio::task::spawn_blocking(move || reloader.reload(&crate::config::process_env))
        .await
        .map_err(|e| format!("the reload failed: {e}"))?
}

async fn upgrade(handlers: &Handlers) -> Result<String, String> {
    let Some(upgrades) = &handlers.upgrades else {
        return Err("this server cannot upgrade".into());
    };
    let (reply, outcome) = oneshot::channel();
    upgrades
        .send(reply)
        .await
        .map_err(|_| "the server is stopping".to_string())?;
    outcome
        .await
        .unwrap_or_else(|_| Err("the server stopped before answering".into()))
}

/// Flushes statistics first, so the archive holds the latest views.
async fn backup(handlers: &Handlers, file: &str) -> Result<String, String> {
    let (data, stats, file) = (
        handlers.data.clone(),
        handlers.stats.clone(),
        PathBuf::from(file),
    );
    tokio::task::spawn_blocking(move || {
        if let Some(stats) = &stats {
            stats.flush_now().map_err(|e| e.to_string())?;
        }
        crate::backup::write_archive(&data, stats.as_ref().map(|s| s.store()), &file)
            .map_err(|e| format!("{e:#}"))
    })
    .await
    .map_err(|e| format!("the backup failed: {e}"))?
}

/// Flushes what is in memory first, so the report includes the latest views.
async fn stats(handlers: &Handlers, days: u32) -> Result<String, String> {
    let Some(stats) = handlers.stats.clone() else {
        return Err("statistics are disabled in this server's config ([stats] enabled)".into());
    };
    tokio::task::spawn_blocking(move || {
        stats.flush_now().map_err(|e| e.to_string())?;
        let report = stats
            .report(days, crate::stats::command::TOP)
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "from {}\n{}",
            stats.store().describe(),
            report.render()
        ))
    })
    .await
    .map_err(|e| format!("the statistics query failed: {e}"))?
}

/// The message of an `ok:` reply; an `error:` reply becomes the error.
pub fn into_result(reply: &str) -> anyhow::Result<String> {
    match reply.strip_prefix("ok: ") {
        Some(message) => Ok(message.to_string()),
        None => Err(anyhow::anyhow!(
            "{}",
            reply.strip_prefix("error: ").unwrap_or(reply)
        )),
    }
}

/// Sends `request` to the server using `data`, if one is running. `None` when
/// no server listens there.
pub async fn request(data: &Path, request: &str) -> anyhow::Result<Option<String>> {
    let path = socket_path(data);
    let stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let mut reply = String::new();
    let mut read = read;
    tokio::time::timeout(REPLY_TIMEOUT, read.read_to_string(&mut reply))
        .await
        .context("the server did not answer in time")??;
    Ok(Some(reply.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopping_server_still_answers_the_request_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(socket_path(dir.path())).unwrap();
        let (upgrades, mut upgrade_requests) = mpsc::channel(1);
        let handlers = Handlers {
            renewals: None,
            stats: None,
            data: dir.path().to_path_buf(),
            reloader: None,
            upgrades: Some(upgrades),
        };
        let shutdown = Shutdown::new();
        let mut serving = tokio::spawn(serve(
            std::sync::Arc::new(listener),
            handlers,
            shutdown.clone(),
        ));
        let data = dir.path().to_path_buf();
        let client = tokio::spawn(async move { request(&data, "upgrade").await });

        // The serving loop has the request when the server starts stopping,
        // as after a handover.
        let reply = upgrade_requests.recv().await.unwrap();
        shutdown.trigger();
        let still_serving = tokio::time::timeout(Duration::from_millis(200), &mut serving).await;
        assert!(still_serving.is_err(), "stopped before answering");
        reply.send(Ok("handed over".into())).unwrap();
        serving.await.unwrap().unwrap();
        let answer = client.await.unwrap().unwrap();
        assert_eq!(answer.as_deref(), Some("ok: handed over"));
    }
}
