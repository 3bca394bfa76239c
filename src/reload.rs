//! Configuration reload (SIGHUP, or `quire reload`): the file is read and
//! validated again; if it has a problem, the reason is returned and the
//! running configuration stays. Otherwise what can change live changes now:
//! limits (for new connections), the redirect and proxy policy, and the
//! domain list (the certificate manager orders a certificate for a new list).
//! Every other change is named, and waits for a restart. [`diff`] sorts each
//! field into one or the other by destructuring the whole [`Config`], so a new
//! field does not compile until someone decides which it is. Every reload is
//! logged here, whatever asked for it, with what it applied or why it refused.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{
    Config, ConfigError, Listen, MetricsConfig, Mode, Overrides, Paths, SiteConfig, StatsConfig,
    TlsConfig,
};
use crate::names::SiteName;
use crate::net::LiveLimits;
use crate::web::{LivePolicy, SitePolicy};

/// A part of the running server a reload can change in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Read by every new connection.
    Limits,
    /// Sent to the certificate manager.
    Domains,
    /// The redirect, HSTS and trusted-proxy policy, rebuilt from the base
    /// URL, the domains, `tls.hsts` and `listen.trusted_proxies`.
    Policy,
}

/// How a newly loaded configuration differs from the running one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// What to apply now, in the order the reply names it.
    pub live: Vec<Live>,
    /// What changed but takes a restart, as the reply names it.
    pub restart: Vec<&'static str>,
}

impl Changes {
    fn live(&mut self, changed: bool, part: Live) {
        if changed && !self.live.contains(&part) {
            self.live.push(part);
        }
    }

    fn restart(&mut self, changed: bool, what: &'static str) {
        if changed && !self.restart.contains(&what) {
            self.restart.push(what);
        }
    }
}

/// Sorts what `next` changes: a restart-bound field is compared with the
/// configuration the process `started` with (it stays in force until the
/// restart, so it is named on every reload until then), a live one with the
/// configuration last `applied`. The base URL is both: redirects follow it at
/// once, pages and feeds at the restart.
pub fn diff(started: &Config, applied: &Config, next: &Config) -> Changes {
    let mut changes = Changes::default();
    let Config {
        mode,
        // Made from the same flags and the same process environment as the
        // running configuration, so they cannot differ.
        drafts: _,
        source: _,
        overrides: _,
        site,
        domains,
        paths,
        listen,
        tls,
        stats,
        metrics,
        limits,
        cluster,
    } = next;
    let SiteConfig {
        title,
        base_url,
        author,
        description,
        language,
        posts_per_page,
        post_url,
    } = site;
    let Paths {
        content,
        templates,
        static_dir,
        data,
    } = paths;
    let Listen {
        http,
        https,
        metrics: metrics_addr,
        local_ca,
        local_ca_public,
        trusted_proxies,
        // Where an address was written changes nothing the server does; the
        // addresses themselves are compared below.
        origins: _,
    } = listen;
    let TlsConfig {
        directory_url,
        contacts,
        eab,
        cert_file,
        key_file,
        renew_before_days,
        check_every,
        challenge,
        post_issue_hook,
        alerts,
        preferred_chain,
        local_ca_lifetime,
        local_ca_tlsserver_lifetime,
        local_ca_shortlived_lifetime,
        profile,
        hsts,
        dns,
        issuers,
    } = tls;
    let StatsConfig {
        enabled: stats_enabled,
        flush_every,
        hourly_retention_days,
        daily_retention_days,
        respect_dnt,
    } = stats;
    let MetricsConfig {
        enabled: metrics_enabled,
        token,
    } = metrics;
    // Compared whole: each new connection reads every limit afresh.
    changes.live(limits != &applied.limits, Live::Limits);
    changes.live(domains != &applied.domains, Live::Domains);
    changes.live(
        base_url != &applied.site.base_url
            || domains != &applied.domains
            || hsts != &applied.tls.hsts
            || trusted_proxies != &applied.listen.trusted_proxies,
        Live::Policy,
    );

    let was = started;
    changes.restart(mode != &was.mode, "tls mode");
    changes.restart(
        http != &was.listen.http
            || https != &was.listen.https
            || metrics_addr != &was.listen.metrics
            || local_ca != &was.listen.local_ca,
        "listen addresses",
    );
    changes.restart(
        content != &was.paths.content
            || templates != &was.paths.templates
            || static_dir != &was.paths.static_dir
            || data != &was.paths.data,
        "paths",
    );
    // The certificate store and the statistics are keyed by the canonical name.
    changes.restart(
        domains.first() != was.domains.first() || base_url != &was.site.base_url,
        "the canonical domain and base_url",
    );
    changes.restart(
        metrics_enabled != &was.metrics.enabled || token != &was.metrics.token,
        "[metrics]",
    );
    changes.restart(stats_enabled != &was.stats.enabled, "stats.enabled");
    // The connection pool and the node's name are set up once, at start.
    changes.restart(cluster != &was.cluster, "[cluster]");
    // The site is rebuilt from the settings it started with.
    changes.restart(title != &was.site.title, "site.title");
    changes.restart(author != &was.site.author, "site.author");
    changes.restart(description != &was.site.description, "site.description");
    changes.restart(language != &was.site.language, "site.language");
    changes.restart(
        posts_per_page != &was.site.posts_per_page,
        "site.posts_per_page",
    );
    changes.restart(post_url != &was.site.post_url, "site.post_url");
    changes.restart(
        local_ca_public != &was.listen.local_ca_public,
        "listen.local_ca_public",
    );
    // The certificate manager and the local CA are built once, at start.
    changes.restart(directory_url != &was.tls.directory_url, "tls.directory_url");
    changes.restart(contacts != &was.tls.contacts, "tls.contacts");
    changes.restart(eab != &was.tls.eab, "tls.eab_kid/eab_hmac");
    changes.restart(issuers != &was.tls.issuers, "tls.issuers");
    changes.restart(
        cert_file != &was.tls.cert_file || key_file != &was.tls.key_file,
        "tls.cert_file/key_file",
    );
    changes.restart(
        renew_before_days != &was.tls.renew_before_days,
        "tls.renew_before_days",
    );
    changes.restart(check_every != &was.tls.check_every, "tls.check_every");
    changes.restart(challenge != &was.tls.challenge, "tls.challenge");
    changes.restart(alerts != &was.tls.alerts, "tls.alert_*");
    changes.restart(
        preferred_chain != &was.tls.preferred_chain,
        "tls.preferred_chain",
    );
    changes.restart(dns != &was.tls.dns, "[tls.dns]");
    changes.restart(
        post_issue_hook != &was.tls.post_issue_hook,
        "tls.post_issue_hook",
    );
    changes.restart(
        local_ca_lifetime != &was.tls.local_ca_lifetime,
        "tls.local_ca_lifetime",
    );
    changes.restart(
        local_ca_tlsserver_lifetime != &was.tls.local_ca_tlsserver_lifetime,
        "tls.local_ca_tlsserver_lifetime",
    );
    changes.restart(
        local_ca_shortlived_lifetime != &was.tls.local_ca_shortlived_lifetime,
        "tls.local_ca_shortlived_lifetime",
    );
    changes.restart(profile != &was.tls.profile, "tls.profile");
    // The flusher and maintenance tasks take these when they are spawned.
    changes.restart(flush_every != &was.stats.flush_every, "stats.flush_every");
    changes.restart(
        hourly_retention_days != &was.stats.hourly_retention_days,
        "stats.hourly_retention_days",
    );
    changes.restart(
        daily_retention_days != &was.stats.daily_retention_days,
        "stats.daily_retention_days",
    );
    changes.restart(respect_dnt != &was.stats.respect_dnt, "stats.respect_dnt");
    changes
}

/// A reload that changed nothing, and why.
#[derive(Debug, thiserror::Error)]
// The problems are part of the text, not a source: the whole of it travels
// as one reply over the control socket and as one log line.
#[error("{0}\nThe running configuration stays.")]
pub struct ReloadError(pub ConfigError);

/// What asked for a reload, as the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Hangup,
    /// `quire reload`, over the control socket.
    Command,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Hangup => "SIGHUP",
            Trigger::Command => "quire reload",
        })
    }
}

/// What a reload can reach in the running server.
pub struct Reloader {
    overrides: Overrides,
    started: Config,
    applied: Mutex<Config>,
    limits: LiveLimits,
    policy: LivePolicy,
    serves_tls: bool,
    /// To the certificate manager, in modes that obtain certificates.
    domains: Option<watch::Sender<Vec<SiteName>>>,
}

impl Reloader {
    pub fn new(
        overrides: Overrides,
        running: Config,
        limits: LiveLimits,
        policy: LivePolicy,
        domains: Option<watch::Sender<Vec<SiteName>>>,
    ) -> Reloader {
        Reloader {
            overrides,
            serves_tls: running.mode != Mode::Off,
            applied: Mutex::new(running.clone()),
            started: running,
            limits,
            policy,
            domains,
        }
    }

    /// Reloads with `env` as the environment, and logs the outcome: at info
    /// what changed, at warn why nothing did. Ok: what changed.
    pub fn reload(
        &self,
        trigger: Trigger,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ReloadError> {
        let outcome = self.apply(env);
        match &outcome {
            Ok(message) => tracing::info!("reload ({trigger}): {message}"),
            Err(refused) => {
                tracing::warn!("reload ({trigger}): the configuration was not reloaded: {refused}")
            }
        }
        outcome
    }

    fn apply(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ReloadError> {
        let next = Config::load(&self.overrides, env).map_err(ReloadError)?;
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let changes = diff(&self.started, &applied, &next);
        let mut done = Vec::new();
        for part in changes.live {
            match part {
                Live::Limits => {
                    self.limits.store(Arc::new(next.limits.clone()));
                    done.push("limits (for new connections)".to_string());
                }
                Live::Domains => match &self.domains {
                    Some(domains) => {
                        domains.send_replace(next.domains.clone());
                        done.push(format!(
                            "domains ({}; a certificate is ordered if the current one does not cover them)",
                            next.domains
                                .iter()
                                .map(SiteName::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    None => done.push("domains".into()),
                },
                Live::Policy => {
                    // Only what reaches the policy counts: HSTS is off without TLS.
                    let policy = SitePolicy::from_config(&next, self.serves_tls);
                    if format!("{policy:?}") != format!("{:?}", self.policy.load()) {
                        self.policy.store(Arc::new(policy));
                        done.push("redirects, HSTS and trusted proxies".into());
                    }
                }
            }
        }
        *applied = next;
        let mut message = match done.is_empty() {
            true => "reloaded; nothing that can change live had changed".to_string(),
            false => format!("reloaded: {}", done.join("; ")),
        };
        if !changes.restart.is_empty() {
            message.push_str(&format!(
                ". Changed, but only applied at the next restart: {}",
                changes.restart.join(", ")
            ));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::no_env;

    fn config(text: &str) -> Config {
        Config::from_parts(None, text, &Overrides::default(), &no_env).unwrap()
    }

    fn changes(started: &str, applied: &str, next: &str) -> Changes {
        diff(&config(started), &config(applied), &config(next))
    }

    fn live(parts: &[Live]) -> Changes {
        Changes {
            live: parts.to_vec(),
            restart: Vec::new(),
        }
    }

    fn restart(what: &[&'static str]) -> Changes {
        Changes {
            live: Vec::new(),
            restart: what.to_vec(),
        }
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let text = "[site]\ntitle = \"Mine\"\n[stats]\nhourly_retention_days = 3\n";
        assert_eq!(changes(text, text, text), Changes::default());
        assert_eq!(changes("", "", ""), Changes::default());
    }

    #[test]
    fn limits_domains_and_policy_apply_live() {
        assert_eq!(
            changes("", "", "[limits]\nmax_header_bytes = 8192\n"),
            live(&[Live::Limits])
        );
        assert_eq!(
            changes(
                "",
                "",
                "[domains]\nnames = [\"localhost\", \"www.localhost\"]\n"
            ),
            live(&[Live::Domains, Live::Policy])
        );
        assert_eq!(
            changes("", "", "[tls]\nhsts = true\n"),
            live(&[Live::Policy])
        );
        assert_eq!(
            changes("", "", "[listen]\ntrusted_proxies = [\"10.0.0.0/8\"]\n"),
            live(&[Live::Policy])
        );
    }

    #[test]
    fn a_live_change_is_applied_once() {
        let smaller = "[limits]\nmax_header_bytes = 8192\n";
        assert_eq!(changes("", smaller, smaller), Changes::default());
        assert_eq!(changes("", smaller, ""), live(&[Live::Limits]));
    }

    #[test]
    fn title_retention_and_the_others_wait_for_a_restart() {
        let cases = [
            ("[site]\ntitle = \"New\"\n", "site.title"),
            ("[site]\nauthor = \"Me\"\n", "site.author"),
            ("[site]\ndescription = \"About\"\n", "site.description"),
            ("[site]\nlanguage = \"pt-BR\"\n", "site.language"),
            ("[site]\nposts_per_page = 3\n", "site.posts_per_page"),
            ("[site]\npost_url = \"/blog/{slug}/\"\n", "site.post_url"),
            (
                "[stats]\nhourly_retention_days = 3\n",
                "stats.hourly_retention_days",
            ),
            (
                "[stats]\ndaily_retention_days = 3\n",
                "stats.daily_retention_days",
            ),
            ("[stats]\nflush_every = \"1m\"\n", "stats.flush_every"),
            ("[stats]\nrespect_dnt = false\n", "stats.respect_dnt"),
            ("[stats]\nenabled = false\n", "stats.enabled"),
            ("[tls]\ncontacts = [\"me@example.com\"]\n", "tls.contacts"),
            ("[tls]\npost_issue_hook = \"true\"\n", "tls.post_issue_hook"),
            ("[tls]\nrenew_before_days = 10\n", "tls.renew_before_days"),
            ("[tls]\ncheck_every = \"1h\"\n", "tls.check_every"),
            ("[tls]\nchallenge = \"tls-alpn-01\"\n", "tls.challenge"),
            (
                "[tls]\nlocal_ca_lifetime = \"1days\"\n",
                "tls.local_ca_lifetime",
            ),
            (
                "[tls]\nlocal_ca_shortlived_lifetime = \"1h\"\n",
                "tls.local_ca_shortlived_lifetime",
            ),
            ("[tls]\nprofile = \"shortlived\"\n", "tls.profile"),
            (
                "[tls]\ndirectory_url = \"https://ca.test/dir\"\n",
                "tls.directory_url",
            ),
            (
                "[tls]\neab_kid = \"k\"\neab_hmac = \"h\"\n",
                "tls.eab_kid/eab_hmac",
            ),
            (
                "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
                "tls.cert_file/key_file",
            ),
            ("[listen]\nhttp = \"127.0.0.1:8081\"\n", "listen addresses"),
            (
                "[listen]\nlocal_ca_public = true\n",
                "listen.local_ca_public",
            ),
            ("[paths]\ncontent = \"posts\"\n", "paths"),
            ("[metrics]\nenabled = false\n", "[metrics]"),
        ];
        for (next, what) in cases {
            let found = changes("", "", next);
            assert!(found.live.is_empty(), "{next}: {found:?}");
            assert_eq!(found.restart, [what], "{next}");
        }
    }

    #[test]
    fn another_mode_waits_for_a_restart() {
        let found = changes("", "", "[tls]\nmode = \"off\"\n");
        assert_eq!(found.restart[0], "tls mode", "{found:?}");
    }

    #[test]
    fn a_restart_bound_change_is_named_until_the_restart() {
        let new_title = "[site]\ntitle = \"New\"\n";
        assert_eq!(changes("", new_title, new_title), restart(&["site.title"]));
        assert_eq!(changes(new_title, "", ""), restart(&["site.title"]));
    }

    #[test]
    fn the_base_url_redirects_now_and_renders_at_the_restart() {
        let next = "[site]\nbase_url = \"https://blog.localhost/\"\n";
        assert_eq!(
            changes("", "", next),
            Changes {
                live: vec![Live::Policy],
                restart: vec!["the canonical domain and base_url"],
            }
        );
    }

    fn reloader(file: &std::path::Path, running: Config) -> Reloader {
        let overrides = Overrides {
            config_file: Some(file.to_path_buf()),
            ..Overrides::default()
        };
        Reloader::new(
            overrides,
            running.clone(),
            crate::net::live_limits(running.limits.clone()),
            crate::web::live_policy(SitePolicy::from_config(&running, true)),
            None,
        )
    }

    #[test]
    fn a_reload_applies_limits_and_names_the_title_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quire.toml");
        std::fs::write(&file, "").unwrap();
        let running = Config::load(
            &Overrides {
                config_file: Some(file.clone()),
                ..Overrides::default()
            },
            &no_env,
        )
        .unwrap();
        let reloader = reloader(&file, running);

        std::fs::write(
            &file,
            "[site]\ntitle = \"New\"\n[limits]\nidle_timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(
            reloader.reload(Trigger::Command, &no_env).unwrap(),
            "reloaded: limits (for new connections). Changed, but only applied at the next restart: site.title"
        );
        assert_eq!(reloader.limits.load().idle_timeout, Duration::from_secs(5));
        assert_eq!(
            reloader.reload(Trigger::Command, &no_env).unwrap(),
            "reloaded; nothing that can change live had changed. Changed, but only applied at the next restart: site.title"
        );

        std::fs::write(&file, "[limits]\nidle_timeout = \"0s\"\n").unwrap();
        let refused = reloader
            .reload(Trigger::Command, &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("limits.idle_timeout")
                && refused.ends_with("\nThe running configuration stays."),
            "{refused}"
        );
        assert_eq!(reloader.limits.load().idle_timeout, Duration::from_secs(5));
    }
}
