//! The control socket, `data/control.sock` (0600): how commands reach a
//! running server that owns the work (`quire cert renew` needs its challenge
//! listener; `quire stats` needs its open store, which sled locks). One request
//! line in (at most [`MAX_REQUEST`] bytes of UTF-8); the reply runs to the end
//! of the stream and starts with `ok:` or `error:`. Every request gets one,
//! a malformed or overlong one included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::acme::manager::RenewRequest;
use crate::datadir::DataDir;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::upgrade::sockets::{Inherited, SocketName};

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
/// The longest request line: `backup` and a path fit (PATH_MAX is 4096); a
/// client that never sends a newline cannot fill memory.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub fn socket_path(data: &Path) -> PathBuf {
    DataDir::new(data).control_socket()
}

/// The socket given at start (an upgrade), or a new one bound in `data`,
/// replacing a stale one left by a crash.
pub fn bind(data: &Path, sockets: &mut Inherited) -> anyhow::Result<UnixListener> {
    if let Some(given) = sockets.take_unix(SocketName::Control) {
        return UnixListener::from_std(given).context("using the given control socket");
    }
    crate::datadir::create_private_dir(data)
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
    let reply = match read_request(read).await {
        Ok(line) => handle(&line, &handlers).await,
        Err(refused) => Err(refused),
    };
    let text = match reply {
        Ok(message) => format!("ok: {message}\n"),
        Err(message) => format!("error: {message}\n"),
    };
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

/// The request line, without its newline; or why it cannot be answered.
/// Reads [`MAX_REQUEST`] bytes and one more at most, so an overlong line is
/// known as such without being held.
async fn read_request(read: impl AsyncRead + Unpin) -> Result<String, String> {
    let mut line = Vec::new();
    let mut bounded = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    match tokio::time::timeout(REQUEST_TIMEOUT, bounded.read_until(b'\n', &mut line)).await {
        Err(_) => {
            return Err(format!(
                "no request line within {REQUEST_TIMEOUT:?}; send one line, such as `ping`"
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.len() > MAX_REQUEST {
        return Err(format!(
            "the request is longer than {MAX_REQUEST} bytes; send one short line, such as `ping`"
        ));
    }
    String::from_utf8(line).map_err(|_| {
        "the request is not UTF-8 text; send one line of text, such as `ping` (a backup path must be UTF-8 too)".to_string()
    })
}

async fn handle(line: &str, handlers: &Handlers) -> Result<String, String> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["renew"] => renew(handlers, false).await,
        ["renew", "--dry-run"] => renew(handlers, true).await,
        ["stats", days] => match days.parse::<u32>() {
            Ok(days) => stats(handlers, days).await,
            Err(_) => Err(format!("`{days}` is not a number of days")),
        },
        ["ping"] => Ok("running".into()),
        ["reload"] => reload(handlers).await,
        ["upgrade"] => upgrade(handlers).await,
        ["backup", ..] => {
            let file = line.trim_start().strip_prefix("backup").unwrap_or_default();
            backup(handlers, file.trim()).await
        }
        _ => Err(format!("unknown request `{}`", line.trim())),
    }
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
    match outcome.await {
        Ok(done) => done.map_err(|e| format!("{e:#}")),
        Err(_) => Err("the certificate manager stopped before answering".into()),
    }
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

    fn handlers(data: &Path) -> Handlers {
        Handlers {
            renewals: None,
            stats: None,
            data: data.to_path_buf(),
            reloader: None,
            upgrades: None,
        }
    }

    /// Answers one connection of a socket pair; the other end is returned.
    fn answering() -> UnixStream {
        let (client, server) = UnixStream::pair().unwrap();
        tokio::spawn(answer(server, handlers(Path::new("/nonexistent"))));
        client
    }

    /// What the server wrote before it closed. A server that closes with
    /// part of the request unread resets the stream after its reply, so a
    /// read error ends the reply too.
    async fn read_reply(mut read: impl AsyncRead + Unpin) -> String {
        let mut reply = Vec::new();
        let mut buf = [0; 1024];
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            reply.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(reply).unwrap()
    }

    #[tokio::test]
    async fn an_endless_line_is_refused_with_an_answer_after_a_bounded_read() {
        const OFFERED: usize = 64 << 20;
        let (read, mut write) = answering().into_split();
        let sender = tokio::spawn(async move {
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < OFFERED {
                match write.write(&chunk).await {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        });
        let reply = read_reply(read).await;
        assert_eq!(
            reply.get(..100).unwrap_or(&reply),
            format!(
                "error: the request is longer than {MAX_REQUEST} bytes; send one short line, such as `ping`\n"
            )
        );
        let sent = sender.await.unwrap();
        assert!(
            sent < OFFERED / 8,
            "the server took {sent} bytes of an endless line"
        );
    }

    #[tokio::test]
    async fn a_line_of_the_longest_length_is_still_answered() {
        let mut client = answering();
        let line = format!("{:<1$}\n", "ping", MAX_REQUEST);
        client.write_all(line.as_bytes()).await.unwrap();
        assert_eq!(read_reply(client).await, "ok: running\n");
    }

    #[tokio::test]
    async fn a_line_that_is_not_utf8_gets_an_error_answer() {
        let mut client = answering();
        client
            .write_all(b"backup /tmp/\xff\xfe.tar\n")
            .await
            .unwrap();
        let reply = read_reply(client).await;
        assert!(
            reply.starts_with("error: the request is not UTF-8 text"),
            "{reply:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_told_so() {
        let client = answering();
        assert_eq!(
            read_reply(client).await,
            "error: no request line within 5s; send one line, such as `ping`\n"
        );
    }

    #[tokio::test]
    async fn a_stopping_server_still_answers_the_request_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(socket_path(dir.path())).unwrap();
        let (upgrades, mut upgrade_requests) = mpsc::channel(1);
        let handlers = Handlers {
            upgrades: Some(upgrades),
            ..handlers(dir.path())
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
