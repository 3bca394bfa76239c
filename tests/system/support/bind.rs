//! BIND `named` as the authoritative server of one zone, for dns-01: started
//! in the foreground on a loopback port of its own, with its config, zone,
//! journal and PID file in a temporary directory, a TSIG key made now that
//! may add and delete TXT records in the zone, no recursion; stopped by PID.

use std::net::SocketAddr;
use std::process::Command;

use base64::Engine;

use super::{Peer, free_port, peer_command, start_until};

/// A running `named`.
pub struct Bind {
    _peer: Peer,
    _dir: tempfile::TempDir,
    /// Where it answers, over UDP and TCP; Pebble's `-dnsserver`.
    pub addr: SocketAddr,
    pub zone: String,
    /// The TSIG key's name, and its secret as `tsig-keygen` prints it.
    pub key_name: String,
    pub secret: String,
}

impl Bind {
    /// Serves `zone` (with an NS record naming `ns1.<zone>` at 127.0.0.1,
    /// where nothing answers on port 53: a secondary that cannot be reached).
    pub fn start(zone: &str) -> Bind {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let key_name = "quire-key".to_string();
        let secret = base64::engine::general_purpose::STANDARD.encode(random_bytes());
        let d = dir.path().display();
        let config = format!(
            r#"options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  managed-keys-directory "{d}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  allow-transfer {{ none; }};
}};
controls {{ }};
key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "{zone}" {{
  type primary;
  file "{d}/zone.db";
  update-policy {{ grant {key_name} zonesub TXT; }};
}};
"#
        );
        std::fs::write(dir.path().join("named.conf"), config).unwrap();
        let records = format!(
            "$TTL 60\n@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 600 60\n@ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n"
        );
        std::fs::write(dir.path().join("zone.db"), records).unwrap();
        let mut named = peer_command("/usr/sbin/named", "bind9");
        // -g: foreground, logging to stderr. Without -u it keeps the user it
        // was started as, root included: it must write its journal here.
        named.arg("-g").arg("-c").arg(dir.path().join("named.conf"));
        let (peer, _) = start_until(named, "running");
        Bind {
            _peer: peer,
            _dir: dir,
            addr: ([127, 0, 0, 1], port).into(),
            zone: zone.to_string(),
            key_name,
            secret,
        }
    }

    /// The TXT values `named` answers for `owner`, asked with `dig`.
    pub fn txt(&self, owner: &str) -> Vec<String> {
        let out = dig(self.addr)
            .args([owner, "TXT", "+short", "+norecurse"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dig: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_matches('"').to_string())
            .collect()
    }
}

impl Bind {
    /// Adds a TXT record with `nsupdate`, signed with the zone's key.
    pub fn add_txt(&self, owner: &str, value: &str) {
        let mut nsupdate = peer_command("nsupdate", "bind9-dnsutils")
            .arg("-y")
            .arg(format!("hmac-sha256:{}:{}", self.key_name, self.secret))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let script = format!(
            "server {} {}\nzone {}\nupdate add {owner} 60 TXT {value}\nsend\n",
            self.addr.ip(),
            self.addr.port(),
            self.zone
        );
        use std::io::Write;
        nsupdate
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(nsupdate.wait().unwrap().success(), "nsupdate failed");
    }
}

fn dig(server: SocketAddr) -> Command {
    let mut dig = peer_command("dig", "bind9-dnsutils");
    dig.arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()]);
    dig
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes
}
