//! Talking to a DNS server: one message over TCP (RFC 7766: no truncation,
//! and a server that refuses TCP for updates is rare), every step bounded in
//! time and size. Signed updates, whose response must be signed back, and
//! plain queries for what the waiting needs (TXT, NS, addresses).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tsig::{self, TsigError};
use super::wire::{self, Message, TxtChange, WireError};
use crate::config::TsigKey;

/// How long one exchange (connect, send, answer) may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

const NOERROR: u16 = 0;
const NXDOMAIN: u16 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("the connection failed: {0}")]
    Io(std::io::Error),
    #[error("no answer within {}s", EXCHANGE_TIMEOUT.as_secs())]
    Timeout,
    #[error("the answer is not DNS: {0}")]
    Wire(#[from] WireError),
    #[error("the answer is for another request")]
    Mismatch,
    /// The server answered with this RCODE.
    #[error("the server answered {}", rcode_name(*.0))]
    Rcode(u16),
    /// The update's TSIG exchange failed, on either side.
    #[error("{0}")]
    Tsig(TsigError),
}

/// The RCODE's mnemonic (RFC 1035, RFC 2136).
pub fn rcode_name(rcode: u16) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        other => return format!("RCODE {other}"),
    };
    name.to_string()
}

fn random_id() -> u16 {
    let mut id = [0u8; 2];
    // A failing system RNG leaves id 0: the answer is still matched by its
    // TSIG (updates) or only affects a query we repeat anyway.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    u16::from_be_bytes(id)
}

/// Sends `request` to `server` and reads one answer, bounded in time (and in
/// size by the two-byte length).
async fn exchange(server: SocketAddr, request: &[u8]) -> Result<Vec<u8>, ExchangeError> {
    let talk = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(ExchangeError::Connect)?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&(request.len() as u16).to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await.map_err(ExchangeError::Io)?;
        let mut length = [0u8; 2];
        stream
            .read_exact(&mut length)
            .await
            .map_err(ExchangeError::Io)?;
        let mut answer = vec![0u8; u16::from_be_bytes(length) as usize];
        stream
            .read_exact(&mut answer)
            .await
            .map_err(ExchangeError::Io)?;
        Ok(answer)
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, talk)
        .await
        .map_err(|_| ExchangeError::Timeout)?
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes `changes` in `zone` at `server`, signed with `key`; succeeds only on
/// a NOERROR answer signed with the same key.
pub async fn update(
    server: SocketAddr,
    zone: &str,
    changes: &[TxtChange],
    key: &TsigKey,
) -> Result<(), ExchangeError> {
    let id = random_id();
    let request = tsig::sign(wire::update(id, zone, changes)?, key, unix_now())?;
    let bytes = exchange(server, &request.bytes).await?;
    let message = wire::parse(&bytes)?;
    if message.id != id || !message.is_response {
        return Err(ExchangeError::Mismatch);
    }
    // A server that refuses the signature says so in its TSIG record (with
    // RCODE NOTAUTH); that says more than the RCODE.
    let signed = tsig::verify(&bytes, &message, &request.mac, key, unix_now());
    match (signed, message.rcode) {
        (Err(TsigError::Unsigned), rcode) if rcode != NOERROR => Err(ExchangeError::Rcode(rcode)),
        (Err(e), _) => Err(ExchangeError::Tsig(e)),
        (Ok(()), NOERROR) => Ok(()),
        (Ok(()), rcode) => Err(ExchangeError::Rcode(rcode)),
    }
}

/// An unsigned question to `server`, answered NOERROR or NXDOMAIN.
async fn ask(
    server: SocketAddr,
    name: &str,
    rtype: u16,
) -> Result<(Vec<u8>, Message), ExchangeError> {
    let id = random_id();
    let bytes = exchange(server, &wire::query(id, name, rtype)?).await?;
    let message = wire::parse(&bytes)?;
    if message.id != id || !message.is_response {
        return Err(ExchangeError::Mismatch);
    }
    match message.rcode {
        NOERROR | NXDOMAIN => Ok((bytes, message)),
        rcode => Err(ExchangeError::Rcode(rcode)),
    }
}

/// The TXT values `server` holds for `owner` (none for a missing name).
pub async fn txt(server: SocketAddr, owner: &str) -> Result<Vec<String>, ExchangeError> {
    let (bytes, message) = ask(server, owner, wire::TYPE_TXT).await?;
    message
        .answers
        .iter()
        .filter(|r| r.rtype == wire::TYPE_TXT && r.owner == owner.to_ascii_lowercase())
        .map(|r| Ok(wire::txt(&bytes[r.rdata.clone()])?))
        .collect()
}

/// The names of `zone`'s authoritative servers, as `server` lists them.
pub async fn ns(server: SocketAddr, zone: &str) -> Result<Vec<String>, ExchangeError> {
    let (bytes, message) = ask(server, zone, wire::TYPE_NS).await?;
    message
        .answers
        .iter()
        .filter(|r| r.rtype == wire::TYPE_NS)
        .map(|r| Ok(wire::name_at(&bytes, r.rdata.start)?.0))
        .collect()
}

/// `host`'s addresses as `server` has them (glue or in-zone records).
pub async fn addresses(server: SocketAddr, host: &str) -> Result<Vec<IpAddr>, ExchangeError> {
    let mut found = Vec::new();
    for rtype in [wire::TYPE_A, wire::TYPE_AAAA] {
        let (bytes, message) = ask(server, host, rtype).await?;
        for record in message.answers.iter().filter(|r| r.rtype == rtype) {
            let rdata = &bytes[record.rdata.clone()];
            if let Ok(v4) = <[u8; 4]>::try_from(rdata) {
                found.push(IpAddr::from(v4));
            } else if let Ok(v6) = <[u8; 16]>::try_from(rdata) {
                found.push(IpAddr::from(v6));
            }
        }
    }
    Ok(found)
}
