//! Configuration reload (SIGHUP, or `quire reload`): the file is read and
//! validated again; if it has a problem, the reason is returned and the
//! running configuration stays. Otherwise what can change live changes now:
//! limits (for new connections), the redirect and proxy policy, and the
//! domain list (the certificate manager orders a certificate for a new list).
//! Changes that need new sockets or a new data layout are named, and wait for
//! a restart.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::config::{Config, Overrides};
use crate::net::LiveLimits;
use crate::web::{LivePolicy, SitePolicy};

/// What a reload can reach in the running server.
pub struct Reloader {
    overrides: Overrides,
    running: Mutex<Config>,
    limits: LiveLimits,
    policy: LivePolicy,
    serves_tls: bool,
    /// To the certificate manager, in modes that obtain certificates.
    domains: Option<watch::Sender<Vec<crate::config::Domain>>>,
}

impl Reloader {
    pub fn new(
        overrides: Overrides,
        running: Config,
        limits: LiveLimits,
        policy: LivePolicy,
        domains: Option<watch::Sender<Vec<crate::config::Domain>>>,
    ) -> Reloader {
        Reloader {
            overrides,
            serves_tls: running.mode != crate::config::Mode::Off,
            running: Mutex::new(running),
            limits,
            policy,
            domains,
        }
    }

    /// Reloads with `env` as the environment. Ok: what changed; Err: why
    /// nothing did.
    pub fn reload(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let next = Config::load(&self.overrides, env)
            .map_err(|e| format!("{e}\nThe running configuration stays."))?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut waits = Vec::new();
        let mut wait = |changed: bool, what: &str| {
            if changed {
                waits.push(what.to_string());
            }
        };
        wait(next.mode != running.mode, "tls mode");
        wait(
            next.listen.http != running.listen.http
                || next.listen.https != running.listen.https
                || next.listen.metrics != running.listen.metrics
                || next.listen.local_ca != running.listen.local_ca,
            "listen addresses",
        );
        wait(
            next.paths.content != running.paths.content
                || next.paths.templates != running.paths.templates
                || next.paths.static_dir != running.paths.static_dir
                || next.paths.data != running.paths.data,
            "paths",
        );
        wait(
            next.canonical_domain() != running.canonical_domain()
                || next.site.base_url != running.site.base_url,
            "the canonical domain and base_url",
        );
        wait(
            next.metrics.enabled != running.metrics.enabled
                || next.metrics.token != running.metrics.token,
            "[metrics]",
        );
        wait(next.stats.enabled != running.stats.enabled, "stats.enabled");

        let mut applied = Vec::new();
        if format!("{:?}", next.limits) != format!("{:?}", running.limits) {
            self.limits.store(std::sync::Arc::new(next.limits.clone()));
            running.limits = next.limits.clone();
            applied.push("limits (for new connections)".to_string());
        }
        if next.domains != running.domains {
            if let Some(domains) = &self.domains {
                domains.send_replace(next.domains.clone());
                applied.push(format!(
                    "domains ({}; a certificate is ordered if the current one does not cover them)",
                    next.domains
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            } else {
                applied.push("domains".into());
            }
            running.domains = next.domains.clone();
        }
        let policy = SitePolicy::from_config(&next, self.serves_tls);
        if format!("{policy:?}") != format!("{:?}", self.policy.load()) {
            self.policy.store(std::sync::Arc::new(policy));
            running.listen.trusted_proxies = next.listen.trusted_proxies.clone();
            running.tls.hsts = next.tls.hsts;
            applied.push("redirects, HSTS and trusted proxies".into());
        }
        let mut message = match applied.is_empty() {
            true => "reloaded; nothing that can change live had changed".to_string(),
            false => format!("reloaded: {}", applied.join("; ")),
        };
        if !waits.is_empty() {
            message.push_str(&format!(
                ". Changed, but only applied at the next restart: {}",
                waits.join(", ")
            ));
        }
        Ok(message)
    }
}
