//! The control socket's server, `data/control.sock` (0600): the activity that
//! answers commands needing what a running server owns (`quire cert renew`
//! needs its challenge listener; `quire stats` needs its open store, which
//! sled locks). Every request gets one reply, a malformed or overlong one
//! included; what it can act on is handed in as [`Handlers`], so this file
//! knows the channels and handles, not who serves them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{DecodeError, MAX_REQUEST, Reply, Request};
use crate::acme::manager::RenewRequest;
use crate::datadir::DataDir;
use crate::net::{Inherited, SocketName};
use crate::reload::{Reloader, Trigger};
use crate::shutdown::Shutdown;
use crate::stats::Stats;

/// An upgrade asked for through the control socket, and where its outcome
/// goes; the serving loop, which owns the sockets to hand over, answers it.
pub type UpgradeRequest = oneshot::Sender<Result<String, String>>;

/// What the running server can be asked to do.
#[derive(Clone)]
pub struct Handlers {
    /// The certificate manager, in modes that obtain certificates.
    pub renewals: Option<mpsc::Sender<RenewRequest>>,
    pub stats: Option<Stats>,
    /// The data directory, for backups.
    pub data: PathBuf,
    pub reloader: Option<Arc<Reloader>>,
    /// The serving loop, which hands over to a new binary.
    pub upgrades: Option<mpsc::Sender<UpgradeRequest>>,
}

/// How long a stopping server waits for control requests it is answering.
const ANSWER_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket given at start (an upgrade), or a new one bound in `data`,
/// replacing a stale one left by a crash.
pub fn bind(data: &std::path::Path, sockets: &mut Inherited) -> anyhow::Result<UnixListener> {
    if let Some(given) = sockets.take_unix(SocketName::Control) {
        return UnixListener::from_std(given).context("using the given control socket");
    }
    crate::datadir::create_private_dir(data)
        .with_context(|| format!("creating the data directory {}", data.display()))?;
    let path = DataDir::new(data).control_socket();
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    Ok(listener)
}

/// Answers requests until shutdown.
pub async fn serve(
    listener: Arc<UnixListener>,
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

async fn answer(stream: UnixStream, handlers: Handlers) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let reply = match read_request(read).await {
        Ok(request) => handle(request, &handlers).await,
        Err(refused) => Reply::Error(refused.to_string()),
    };
    write.write_all(reply.encode().as_bytes()).await
}

/// Why a request line was not read.
#[derive(Debug, thiserror::Error)]
enum Unread {
    #[error("no request line within {REQUEST_TIMEOUT:?}; send one line, such as `ping`")]
    Timeout,
    #[error("cannot read the request: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Malformed(#[from] DecodeError),
}

/// Reads [`MAX_REQUEST`] bytes and one more at most, so an overlong line is
/// known as such without being held.
async fn read_request(read: impl AsyncRead + Unpin) -> Result<Request, Unread> {
    let mut line = Vec::new();
    let mut bounded = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    tokio::time::timeout(REQUEST_TIMEOUT, bounded.read_until(b'\n', &mut line))
        .await
        .map_err(|_| Unread::Timeout)??;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Request::decode(&line)?)
}

async fn handle(request: Request, handlers: &Handlers) -> Reply {
    match request {
        Request::Ping => Reply::Ok("running".into()),
        Request::Renew { dry_run } => renew(handlers, dry_run).await,
        Request::Stats { days, by_node } => stats(handlers, days, by_node).await,
        Request::Reload => reload(handlers).await,
        Request::Upgrade => upgrade(handlers).await,
        Request::Backup { file } => backup(handlers, file).await,
    }
}

async fn renew(handlers: &Handlers, dry_run: bool) -> Reply {
    let Some(renewals) = &handlers.renewals else {
        return Reply::Error("this server's mode does not obtain certificates by ACME".into());
    };
    let (reply, outcome) = oneshot::channel();
    if renewals
        .send(RenewRequest { dry_run, reply })
        .await
        .is_err()
    {
        return Reply::Error("the certificate manager is not running".into());
    }
    match outcome.await {
        Ok(outcome) => Reply::from_outcome(outcome),
        Err(_) => Reply::Error("the certificate manager stopped before answering".into()),
    }
}

async fn reload(handlers: &Handlers) -> Reply {
    let Some(reloader) = handlers.reloader.clone() else {
        return Reply::Error("this server cannot reload".into());
    };
    let reload = move || reloader.reload(Trigger::Command, &crate::config::process_env);
    match tokio::task::spawn_blocking(reload).await {
        Ok(outcome) => Reply::from_outcome(outcome),
        Err(e) => {
            tracing::error!("reload ({}): the reload failed: {e}", Trigger::Command);
            Reply::Error(format!("the reload failed: {e}"))
        }
    }
}

async fn upgrade(handlers: &Handlers) -> Reply {
    let Some(upgrades) = &handlers.upgrades else {
        return Reply::Error("this server cannot upgrade".into());
    };
    let (reply, outcome) = oneshot::channel();
    if upgrades.send(reply).await.is_err() {
        return Reply::Error("the server is stopping".into());
    }
    match outcome.await {
        Ok(outcome) => Reply::from_outcome(outcome),
        Err(_) => Reply::Error("the server stopped before answering".into()),
    }
}

/// Flushes statistics first, so the archive holds the latest views.
async fn backup(handlers: &Handlers, file: PathBuf) -> Reply {
    let (data, stats) = (handlers.data.clone(), handlers.stats.clone());
    let made = tokio::task::spawn_blocking(move || {
        if let Some(stats) = &stats {
            stats.flush_now().context("flushing the statistics")?;
        }
        crate::backup::write_archive(&data, stats.as_ref().map(|s| s.store()), &file)
    })
    .await;
    match made {
        Ok(outcome) => Reply::from_outcome(outcome),
        Err(e) => Reply::Error(format!("the backup failed: {e}")),
    }
}

/// Flushes what is in memory first, so the report includes the latest views.
async fn stats(handlers: &Handlers, days: u32, by_node: bool) -> Reply {
    let Some(stats) = handlers.stats.clone() else {
        return Reply::Error(
            "statistics are disabled in this server's config ([stats] enabled)".into(),
        );
    };
    let report = tokio::task::spawn_blocking(move || {
        stats.flush_now()?;
        let text = crate::stats::command::report_text(&stats, days)?;
        let nodes = match by_node {
            true => crate::stats::command::by_node_text(&stats, days)?,
            false => None,
        };
        Ok::<_, crate::stats::StatsStoreError>(text + &nodes.unwrap_or_default())
    })
    .await;
    match report {
        Ok(outcome) => Reply::from_outcome(outcome),
        Err(e) => Reply::Error(format!("the statistics query failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
        let socket = DataDir::new(dir.path()).control_socket();
        let listener = UnixListener::bind(&socket).unwrap();
        let (upgrades, mut upgrade_requests) = mpsc::channel(1);
        let handlers = Handlers {
            upgrades: Some(upgrades),
            ..handlers(dir.path())
        };
        let shutdown = Shutdown::new();
        let mut serving = tokio::spawn(serve(Arc::new(listener), handlers, shutdown.clone()));
        let client = tokio::spawn(async move {
            let mut stream = UnixStream::connect(socket).await.unwrap();
            stream.write_all(b"upgrade\n").await.unwrap();
            read_reply(stream).await
        });

        // The serving loop has the request when the server starts stopping,
        // as after a handover.
        let reply = upgrade_requests.recv().await.unwrap();
        shutdown.trigger();
        let still_serving = tokio::time::timeout(Duration::from_millis(200), &mut serving).await;
        assert!(still_serving.is_err(), "stopped before answering");
        reply.send(Ok("handed over".into())).unwrap();
        serving.await.unwrap().unwrap();
        let answer = client.await.unwrap();
        assert_eq!(answer.trim_end(), "ok: handed over");
    }
}
