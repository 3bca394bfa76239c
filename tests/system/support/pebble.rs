//! Pebble, the ACME test CA, and pebble-challtestsrv as its DNS server: each
//! started on loopback ports of its own, waited for, and stopped by PID.
//! Every test starts Pebble here. Validation is real (Pebble fetches http-01
//! answers and makes tls-alpn-01 handshakes at the address its DNS gives)
//! unless a test asks for a Pebble that passes every challenge unchecked.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{DEADLINE, Peer, SiteDir, TestCa, free_port, peer_command};

/// Starts `command` and waits for a line of its output containing `ready`;
/// returns the peer and that line.
pub fn start_until(mut command: Command, ready: &str) -> (Peer, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peer");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (tx, ready) = (tx.clone(), ready.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(line);
                }
            }
        });
    }
    let peer = Peer(child);
    let line = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("the peer never printed `{ready}`"));
    (peer, line)
}

/// Waits until something listens on TCP `port` of 127.0.0.1.
fn wait_listening(what: &str, port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < DEADLINE,
            "{what} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where Pebble validates: the ports it connects to, and the DNS server
/// that says at which address (the system resolver when `None`).
pub struct PebbleSettings {
    pub http_port: u16,
    pub tls_port: u16,
    pub dns: Option<SocketAddr>,
}

/// A running Pebble (or one stopped by the test, to be started again on
/// the same ports).
pub struct Pebble {
    peer: Option<Peer>,
    /// How it was started, to start it again.
    environment: Vec<(String, String)>,
    dns: Option<SocketAddr>,
    acme: u16,
    dir: tempfile::TempDir,
    /// The ACME directory URL.
    pub directory: String,
    /// The root of Pebble's own HTTPS endpoint, for `QUIRE_ACME_ROOTS`.
    pub ca_file: String,
    management: u16,
}

/// Whether Pebble checks the answers to its challenges.
#[derive(Clone, Copy)]
enum Validation {
    Real,
    AlwaysValid,
}

impl Pebble {
    /// Pebble validating for real, where `settings` say.
    pub fn start(settings: PebbleSettings) -> Pebble {
        Pebble::launch(&settings, Validation::Real, &[])
    }

    /// Pebble validating for real, whose certificates come with chains
    /// `length` long (leaf included) under its root, and under each of
    /// `alternates` other roots as alternate chains.
    pub fn offering_chains(settings: PebbleSettings, length: u8, alternates: u8) -> Pebble {
        let (length, alternates) = (length.to_string(), alternates.to_string());
        Pebble::launch(
            &settings,
            Validation::Real,
            &[
                ("PEBBLE_CHAIN_LENGTH", &length),
                ("PEBBLE_ALTERNATE_ROOTS", &alternates),
            ],
        )
    }

    /// Pebble passing every challenge unchecked, for tests of what follows
    /// issuance (which node orders, how a certificate spreads) rather than of
    /// validation: nothing needs to listen where it would validate.
    pub fn always_valid() -> Pebble {
        let nowhere = PebbleSettings {
            http_port: free_port(),
            tls_port: free_port(),
            dns: None,
        };
        Pebble::launch(&nowhere, Validation::AlwaysValid, &[])
    }

    fn launch(
        settings: &PebbleSettings,
        validation: Validation,
        environment: &[(&str, &str)],
    ) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = pebble_tls(dir.path());
        let (acme, management) = (free_port(), free_port());
        let config = format!(
            r#"{{"pebble":{{"listenAddress":"127.0.0.1:{acme}","managementListenAddress":"127.0.0.1:{management}","certificate":"{0}/pebble.pem","privateKey":"{0}/pebble.key","httpPort":{http},"tlsPort":{tls},"ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#,
            dir.path().display(),
            http = settings.http_port,
            tls = settings.tls_port,
        );
        std::fs::write(dir.path().join("pebble.json"), config).unwrap();
        let mut environment: Vec<(String, String)> = environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Validation::AlwaysValid = validation {
            environment.push(("PEBBLE_VA_ALWAYS_VALID".into(), "1".into()));
        }
        let mut pebble = Pebble {
            peer: None,
            environment,
            dns: settings.dns,
            acme,
            dir,
            directory: format!("https://127.0.0.1:{acme}/dir"),
            ca_file,
            management,
        };
        pebble.resume();
        pebble
    }

    /// Stops Pebble by its PID: its ACME port refuses connections.
    pub fn stop(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.stop();
        }
    }

    /// Starts a stopped Pebble again, on the same ports with the same HTTPS
    /// certificate (and, as Pebble keeps nothing, new roots and no accounts).
    pub fn resume(&mut self) {
        assert!(self.peer.is_none(), "pebble is running");
        let mut pebble = peer_command("pebble", "pebble");
        pebble
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order goes through its challenges, never waved through
            // on an earlier order's authorization: Pebble's default reuses
            // half of them at random, so a run would take one path or the
            // other by chance.
            .env("PEBBLE_AUTHZREUSE", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .envs(
                self.environment
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        if let Some(dns) = self.dns {
            pebble.arg("-dnsserver").arg(dns.to_string());
        }
        let (peer, _) = start_until(pebble, "ACME directory available");
        // Pebble says so just before it listens.
        wait_listening("pebble", self.acme);
        wait_listening("pebble's management interface", self.management);
        self.peer = Some(peer);
    }

    /// The example site for `localhost` in acme mode against this Pebble,
    /// its http listener on `http_port` (where Pebble validates http-01;
    /// 0 when nothing is validated); `tls` is added to its `[tls]` table.
    pub fn site(&self, http_port: u16, tls: &str) -> SiteDir {
        let site = SiteDir::example("");
        std::fs::write(
            site.config(),
            format!(
                "[domains]\nnames = [\"localhost\"]\n\n[listen]\nhttp = \"127.0.0.1:{http_port}\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"{}\"\n{tls}",
                self.directory
            ),
        )
        .unwrap();
        site
    }

    /// The root Pebble issues certificates under, from its management interface.
    pub fn issuing_root(&self) -> String {
        self.root(0)
    }

    /// Root `n`: 0 is the default chain's, 1 and up the alternates'.
    pub fn root(&self, n: u8) -> String {
        curl(&[
            "--cacert",
            &self.ca_file,
            &format!("https://127.0.0.1:{}/roots/{n}", self.management),
        ])
    }
}

/// A certificate for Pebble's own HTTPS endpoint, from a CA made now;
/// returns the CA's root file.
fn pebble_tls(dir: &Path) -> String {
    let ca = TestCa::new();
    let issued = ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("pebble.pem"), &issued.chain_pem).unwrap();
    std::fs::write(dir.join("pebble.key"), &issued.key_pem).unwrap();
    std::fs::write(dir.join("pebble-ca.pem"), &ca.root_pem).unwrap();
    dir.join("pebble-ca.pem").display().to_string()
}

/// pebble-challtestsrv as a DNS server only: A records for names the test
/// sets, `default_ipv4` for the rest, no AAAA records.
pub struct TestDns {
    _peer: Peer,
    /// Pebble's `-dnsserver`.
    pub addr: SocketAddr,
    management: u16,
}

impl TestDns {
    pub fn start(default_ipv4: &str) -> TestDns {
        let (dns, management) = (free_port(), free_port());
        let mut server = peer_command("pebble-challtestsrv", "pebble");
        server
            .args(["-defaultIPv6", "", "-defaultIPv4", default_ipv4])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{management}")]);
        let (peer, _) = start_until(server, "Starting management server");
        wait_listening("pebble-challtestsrv's DNS", dns);
        wait_listening("pebble-challtestsrv's management interface", management);
        TestDns {
            _peer: peer,
            addr: ([127, 0, 0, 1], dns).into(),
            management,
        }
    }

    /// Answers A queries for `host` with `addresses`.
    pub fn set_a(&self, host: &str, addresses: &[&str]) {
        let body = serde_json::json!({ "host": host, "addresses": addresses }).to_string();
        curl(&[
            "--data",
            &body,
            &format!("http://127.0.0.1:{}/add-a", self.management),
        ]);
    }
}

/// A request to a management interface (Pebble's or pebble-challtestsrv's)
/// that must succeed; returns the body.
fn curl(args: &[&str]) -> String {
    let out = peer_command("curl", "curl")
        .args(["-sS", "--fail"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
