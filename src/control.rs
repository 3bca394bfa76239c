//! The control socket, `data/control.sock` (0600): how `quire cert renew`
//! reaches a running server, whose challenge listener and certificate manager
//! must do the work. One request line in, one reply line out (`ok: ...` or
//! `error: ...`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::acme::manager::RenewRequest;
use crate::shutdown::Shutdown;

/// A renewal may wait on a CA; give it time, but not forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

pub fn socket_path(data: &Path) -> PathBuf {
    data.join("control.sock")
}

/// Binds the socket, replacing a stale one left by a crash.
pub fn bind(data: &Path) -> anyhow::Result<UnixListener> {
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
    renewals: mpsc::Sender<RenewRequest>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => accepted.context("accepting on the control socket")?,
        };
        let renewals = renewals.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, renewals).await {
                tracing::debug!("control request failed: {e:#}");
            }
        });
    }
}

async fn answer(stream: UnixStream, renewals: mpsc::Sender<RenewRequest>) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(read).read_line(&mut line),
    )
    .await
    .context("no request")??;
    let dry_run = match line.trim() {
        "renew" => false,
        "renew --dry-run" => true,
        other => {
            write
                .write_all(format!("error: unknown request `{other}`\n").as_bytes())
                .await?;
            return Ok(());
        }
    };
    let (reply, outcome) = oneshot::channel();
    renewals
        .send(RenewRequest { dry_run, reply })
        .await
        .context("the certificate manager is not running")?;
    let text = match outcome.await {
        Ok(Ok(message)) => format!("ok: {message}\n"),
        Ok(Err(message)) => format!("error: {message}\n"),
        Err(_) => "error: the certificate manager stopped before answering\n".into(),
    };
    write.write_all(text.as_bytes()).await?;
    Ok(())
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
    let mut line = String::new();
    tokio::time::timeout(REPLY_TIMEOUT, BufReader::new(read).read_line(&mut line))
        .await
        .context("the server did not answer in time")??;
    Ok(Some(line.trim_end().to_string()))
}
