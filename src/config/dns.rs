//! `[tls.dns]`, where dns-01 answers are published: the DNS server that takes
//! RFC 2136 updates, the zone, and the TSIG key (RFC 8945) that signs them,
//! as typed values. The secret is read when the config is loaded (so `quire
//! check` finds a missing or garbled one) and is never printed: not by
//! `Debug`, not in any error.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;

use crate::names::DnsName;

/// The environment variable that holds the TSIG secret instead of a file.
pub const TSIG_SECRET_VAR: &str = "QUIRE_TSIG_SECRET";
/// The port of a `server` written without one.
const DNS_PORT: u16 = 53;
/// A secret file is a line of base64 or `tsig-keygen`'s few lines; anything
/// much larger is the wrong file.
const MOST_SECRET_FILE_BYTES: u64 = 4096;
/// RFC 8945 section 6: a key shorter than half the hash is refused; 16 bytes
/// is half of SHA-256's. 512 bytes is far beyond any generated key.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=512;

/// How to publish dns-01 answers by dynamic update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsUpdateSettings {
    /// Where updates go (the zone's primary).
    pub server: DnsServer,
    /// The zone the update names; every configured name lies in it.
    pub zone: DnsName,
    pub key: TsigKey,
}

/// A DNS server as written: a host name or IP address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsServer {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// A TSIG key: its name (as the server knows it), algorithm and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: TsigKeyName,
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
    /// Where the secret came from, for messages.
    pub source: SecretSource,
}

impl TsigKey {
    pub fn new(
        name: TsigKeyName,
        algorithm: TsigAlgorithm,
        secret: Vec<u8>,
        source: SecretSource,
    ) -> TsigKey {
        TsigKey {
            name,
            algorithm,
            secret,
            source,
        }
    }

    /// The secret itself, only for computing MACs.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field(
                "secret",
                &format_args!("({} bytes, not shown)", self.secret.len()),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// Where the TSIG secret was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "{}", path.display()),
            SecretSource::Env => f.write_str(TSIG_SECRET_VAR),
        }
    }
}

/// A TSIG key name: DNS labels of letters, digits, `-` and `_`, lowercase
/// (servers compare them so, and the MAC covers the lowercase form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigKeyName(String);

impl TsigKeyName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TsigKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TsigKeyName {
    type Err = DnsValueError;
    fn from_str(text: &str) -> Result<TsigKeyName, DnsValueError> {
        let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(DnsValueError::KeyName(text.to_string()));
        }
        Ok(TsigKeyName(name))
    }
}

/// The HMACs RFC 8945 requires or recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// The algorithm's name as written in config and BIND's key statements.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TsigAlgorithm {
    type Err = DnsValueError;
    fn from_str(text: &str) -> Result<TsigAlgorithm, DnsValueError> {
        match text
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase()
            .as_str()
        {
            "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
            "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
            _ => Err(DnsValueError::Algorithm(text.to_string())),
        }
    }
}

/// Why a `[tls.dns]` value is refused; each says what to write instead.
/// None of them holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsValueError {
    #[error(
        "`{0}` is not a DNS server address; use a host or IP address with the port, such as \"ns1.example.com:53\" or \"192.0.2.53:53\""
    )]
    Server(String),
    #[error(
        "`{0}` is not a TSIG key name; use the name in the server's key statement, such as \"quire-key\""
    )]
    KeyName(String),
    #[error("`{0}` is not supported; use \"hmac-sha256\", \"hmac-sha384\" or \"hmac-sha512\"")]
    Algorithm(String),
    #[error(
        "cannot read the TSIG secret file {path} ({why}); create it (mode 0600) with the secret from `tsig-keygen -a hmac-sha256 quire-key`, or set {TSIG_SECRET_VAR}"
    )]
    SecretFile { path: PathBuf, why: String },
    #[error(
        "{from} does not hold a TSIG secret ({why}); write the base64 secret that `tsig-keygen -a hmac-sha256 quire-key` prints (its whole output works too)"
    )]
    Secret { from: SecretSource, why: String },
}

/// `host:port`, or a host alone for port 53; IPv6 addresses in brackets.
pub fn server(text: &str) -> Result<DnsServer, DnsValueError> {
    let refused = || DnsValueError::Server(text.to_string());
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(DnsServer {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(DnsServer {
            host: ip.to_string(),
            port: DNS_PORT,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| refused())?),
        None => (text, DNS_PORT),
    };
    let host = DnsName::parse_written(host).map_err(|_| refused())?;
    if port == 0 {
        return Err(refused());
    }
    Ok(DnsServer {
        host: host.into_string(),
        port,
    })
}

/// The secret from `tls.dns.tsig_secret_file`: bounded in size.
pub fn secret_file(path: &Path) -> Result<Vec<u8>, DnsValueError> {
    let refused = |why: String| DnsValueError::SecretFile {
        path: path.to_path_buf(),
        why,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| refused(e.to_string()))?
        .len();
    if size > MOST_SECRET_FILE_BYTES {
        return Err(refused(format!(
            "{size} bytes; a secret file holds one key, at most {MOST_SECRET_FILE_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
    secret(&text, SecretSource::File(path.to_path_buf()))
}

/// A secret as written: the base64 alone, or `tsig-keygen`'s output
/// (`key "name" { algorithm ...; secret "..."; };`), whose secret is taken.
pub fn secret(text: &str, source: SecretSource) -> Result<Vec<u8>, DnsValueError> {
    let refused = |why: &str| DnsValueError::Secret {
        from: source.clone(),
        why: why.to_string(),
    };
    let written = match text.split_once("secret \"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or_default(),
        None => text.trim(),
    };
    if written.is_empty() {
        return Err(refused("it is empty"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(written)
        .map_err(|_| refused("it is not base64"))?;
    if !SECRET_BYTES.contains(&bytes.len()) {
        return Err(refused(&format!(
            "{} bytes; a TSIG secret has {} to {}",
            bytes.len(),
            SECRET_BYTES.start(),
            SECRET_BYTES.end()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_host_and_port_with_53_by_default() {
        let s = |t: &str| server(t).map(|s| s.to_string());
        assert_eq!(s("ns1.Example.com:5353").unwrap(), "ns1.example.com:5353");
        assert_eq!(s("ns1.example.com").unwrap(), "ns1.example.com:53");
        assert_eq!(s("127.0.0.1:1053").unwrap(), "127.0.0.1:1053");
        assert_eq!(s("[::1]:53").unwrap(), "[::1]:53");
        assert_eq!(s("::1").unwrap(), "[::1]:53");
        for bad in ["ns1.example.com:99999", "ns1.example.com:0", "ns 1:53", ""] {
            assert_eq!(server(bad), Err(DnsValueError::Server(bad.into())), "{bad}");
        }
    }

    #[test]
    fn a_secret_is_base64_alone_or_in_tsig_keygens_output() {
        let bytes: Vec<u8> = (0..32).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(
            secret(&format!("{b64}\n"), SecretSource::Env).unwrap(),
            bytes
        );
        let keygen =
            format!("key \"quire-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{b64}\";\n}};\n");
        assert_eq!(secret(&keygen, SecretSource::Env).unwrap(), bytes);
    }

    #[test]
    fn a_bad_secret_is_refused_without_showing_it() {
        let short = base64::engine::general_purpose::STANDARD.encode(b"sixteen-minus-1");
        for text in ["", "not base64 at all!", short.as_str()] {
            let e = secret(text, SecretSource::Env).unwrap_err().to_string();
            assert!(
                e.starts_with("QUIRE_TSIG_SECRET does not hold a TSIG secret"),
                "{e}"
            );
            assert!(text.is_empty() || !e.contains(text), "{e}");
        }
    }

    #[test]
    fn a_secret_file_is_read_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsig.secret");
        let e = secret_file(&path).unwrap_err().to_string();
        assert!(e.contains("cannot read the TSIG secret file"), "{e}");
        std::fs::write(&path, "A".repeat(5000)).unwrap();
        let e = secret_file(&path).unwrap_err().to_string();
        assert!(e.contains("5000 bytes"), "{e}");
        std::fs::write(&path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
        assert_eq!(secret_file(&path).unwrap(), vec![0; 32]);
    }

    #[test]
    fn the_key_shows_everything_but_its_secret() {
        let key = TsigKey::new(
            "Quire-Key.".parse().unwrap(),
            "HMAC-SHA512".parse().unwrap(),
            b"super secret value!".to_vec(),
            SecretSource::Env,
        );
        assert_eq!(key.name.as_str(), "quire-key");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
        let shown = format!("{key:?}");
        assert!(!shown.contains("super secret"), "{shown}");
        assert!(shown.contains("19 bytes, not shown"), "{shown}");
        assert!("md5".parse::<TsigAlgorithm>().is_err());
        assert!("bad key!".parse::<TsigKeyName>().is_err());
    }
}
