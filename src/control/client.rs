//! The control socket's client, used by the commands: sends one [`Request`]
//! to the server running on a data directory and reads its [`Reply`]. Knows
//! nothing of the server's side; "no server is running" is an outcome the
//! commands branch on (they then do the work themselves), not a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::protocol::{EncodeError, Reply, Request};
use crate::datadir::DataDir;

/// A renewal may wait on a CA; give it time, but not forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (none there, or a stale one).
    #[error("no server is running on {}", .socket.display())]
    NotRunning { socket: PathBuf },
    /// The server answered with an error; its message says why.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("connecting to {}", .socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the server on {}", .socket.display())]
    Exchange {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("the server did not answer in time")]
    Timeout(#[source] tokio::time::error::Elapsed),
}

/// Asks the server running on `data`; its `ok:` message, or why there is none.
pub async fn ask(data: &Path, request: &Request) -> Result<String, ClientError> {
    let line = request.encode()?;
    let socket = DataDir::new(data).control_socket();
    let stream = match UnixStream::connect(&socket).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning { socket });
        }
        Err(source) => return Err(ClientError::Connect { socket, source }),
    };
    let exchange = async {
        let (mut read, mut write) = stream.into_split();
        write.write_all(line.as_bytes()).await?;
        let mut reply = String::new();
        read.read_to_string(&mut reply).await?;
        Ok(reply)
    };
    let reply = tokio::time::timeout(REPLY_TIMEOUT, exchange)
        .await
        .map_err(ClientError::Timeout)?
        .map_err(|source| ClientError::Exchange { socket, source })?;
    match Reply::decode(&reply) {
        Reply::Ok(message) => Ok(message),
        Reply::Error(message) => Err(ClientError::Refused(message)),
    }
}

/// Like [`ask`], with `None` when no server is running, for commands that
/// then do the work themselves.
pub async fn ask_if_running(data: &Path, request: &Request) -> Result<Option<String>, ClientError> {
    match ask(data, request).await {
        Err(ClientError::NotRunning { .. }) => Ok(None),
        answered => answered.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncBufReadExt;
    use tokio::net::UnixListener;

    use super::*;

    /// A server on `data` that answers one connection with `reply`, and
    /// hands back the request line it read.
    fn answering_once(data: &Path, reply: &'static str) -> tokio::task::JoinHandle<String> {
        let listener = UnixListener::bind(DataDir::new(data).control_socket()).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            tokio::io::BufReader::new(read)
                .read_line(&mut line)
                .await
                .unwrap();
            write.write_all(reply.as_bytes()).await.unwrap();
            line
        })
    }

    #[tokio::test]
    async fn an_ok_reply_is_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let server = answering_once(dir.path(), "ok: from sled\nday views\n");
        let message = ask(
            dir.path(),
            &Request::Stats {
                days: 3,
                by_node: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(message, "from sled\nday views");
        assert_eq!(server.await.unwrap(), "stats 3\n");
    }

    #[tokio::test]
    async fn an_error_reply_is_refused_with_the_servers_words() {
        let dir = tempfile::tempdir().unwrap();
        let _server = answering_once(dir.path(), "error: this server cannot reload\n");
        let e = ask(dir.path(), &Request::Reload).await.unwrap_err();
        assert!(matches!(&e, ClientError::Refused(_)), "{e:?}");
        assert_eq!(e.to_string(), "this server cannot reload");
    }

    #[tokio::test]
    async fn no_socket_or_a_stale_one_means_no_server() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ask_if_running(dir.path(), &Request::Ping).await.unwrap(),
            None
        );
        // A socket file left by a crash: nothing accepts on it.
        drop(
            std::os::unix::net::UnixListener::bind(DataDir::new(dir.path()).control_socket())
                .unwrap(),
        );
        let e = ask(dir.path(), &Request::Ping).await.unwrap_err();
        assert!(matches!(e, ClientError::NotRunning { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_request_the_line_cannot_carry_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let e = ask(
            dir.path(),
            &Request::Backup {
                file: "/tmp/a\nb.tar".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ClientError::Encode(_)), "{e:?}");
    }
}
