//! The in-process ACME server (RFC 8555) and its certificate authority: local
//! mode points quire's ACME client at it, so the whole certificate lifecycle
//! (order, validation, issuance, renewal, revocation) runs without the internet.
//! `authority` owns the keys and certificates (`retired` the intermediates it
//! replaced, `files` their files and errors), `jws` request authentication,
//! `orders` the ACME objects and their transitions, `state` the memory holding
//! them, `api` the endpoints, `csr` and `issue` finalizing, `profiles` what
//! each profile issues, `validate` the challenges, `budget` per-client limits.

mod api;
mod authority;
mod budget;
mod csr;
mod files;
mod issue;
mod jws;
mod orders;
mod problem;
mod profiles;
mod retired;
mod state;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

pub use files::LocalCaError;
pub use profiles::Lifetimes;

use authority::Authority;
use state::State;

pub struct LocalCaSettings {
    /// Holds root.pem and root.key (and the intermediate), kept across restarts.
    pub dir: PathBuf,
    /// The domains served, besides localhost and .test: the root is constrained
    /// to these names, and replaced at startup if it does not cover them.
    pub domains: Vec<String>,
    /// Lifetime of issued certificates, by profile; short lifetimes
    /// exercise renewal.
    pub lifetimes: Lifetimes,
    pub validation: ValidationTarget,
    pub clock: crate::clock::SharedClock,
}

/// Where validation connects: the local CA only certifies names served on this machine,
/// so http-01 connects to `http` (sending `Host: <identifier>`) and tls-alpn-01 connects
/// to `tls` (SNI = identifier, ALPN acme-tls/1), whatever the identifier resolves to.
#[derive(Clone, Copy, Debug)]
pub struct ValidationTarget {
    pub http: SocketAddr,
    pub tls: SocketAddr,
}

pub struct LocalCa {
    settings: LocalCaSettings,
    authority: Authority,
    server_config: Arc<rustls::ServerConfig>,
    state: Mutex<State>,
}

impl LocalCa {
    /// Loads the root (and intermediate) from `dir`, or creates them: dir 0700, key files 0600,
    /// written atomically. A root that is unreadable or corrupt is an error naming the file
    /// and what to do; it is never silently replaced. A sound root without name constraints
    /// covering `domains`, or near its end, is replaced with a warning in the log.
    pub fn open(settings: LocalCaSettings) -> Result<Arc<LocalCa>, LocalCaError> {
        let now = settings.clock.now();
        let authority = Authority::open(&settings.dir, &settings.domains, now)?;
        let server_config = authority.server_config(now)?;
        Ok(Arc::new(LocalCa {
            settings,
            authority,
            server_config,
            state: Mutex::new(State::default()),
        }))
    }

    pub fn root_pem_path(&self) -> PathBuf {
        self.settings.dir.join("root.pem")
    }

    pub fn root_pem(&self) -> &str {
        self.authority.root_pem()
    }

    /// The CA endpoint's TLS configuration: a certificate for 127.0.0.1, ::1 and
    /// localhost issued under the root, so clients trusting only root.pem can connect.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("local CA state poisoned")
    }
}

/// The profiles every local CA offers.
pub fn profile_names() -> impl Iterator<Item = &'static str> {
    profiles::Profile::ALL
        .into_iter()
        .map(profiles::Profile::name)
}

pub fn directory_url(base: &url::Url) -> url::Url {
    let mut url = base.clone();
    let path = format!("{}/directory", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}
