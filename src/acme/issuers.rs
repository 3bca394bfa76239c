//! The CAs a site orders from, in the order they are tried: `[[tls.issuers]]`,
//! or the mode's one CA. Every order starts at the first, so a site that fell
//! back to the second while the first was down returns to the first at its
//! next renewal; a CA that fails (down, rate-limiting, refusing) hands the
//! order to the next one, and what it said is kept for the status.

use serde::{Deserialize, Serialize};
use url::Url;

use super::client::Certifier;
use crate::config::{Config, IssuerConfig, Mode};

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The CAs of an ACME mode in the order they are tried, each with its own
/// profile (`[tls] profile` unless its table names one), and the CA that
/// `quire cert renew --dry-run` asks (Let's Encrypt staging for the Let's
/// Encrypt modes, else the first). `None` for the modes without ACME and for
/// local mode, whose CA is built at start.
pub fn configured(config: &Config) -> Option<(Vec<IssuerConfig>, IssuerConfig)> {
    let tls = &config.tls;
    let single = |url: &str| IssuerConfig {
        directory_url: Url::parse(url).expect("built-in directory URL"),
        eab: tls.eab.clone(),
        profile: tls.profile.clone(),
        roots: None,
    };
    let listed = || -> Vec<IssuerConfig> {
        tls.issuers
            .iter()
            .map(|issuer| IssuerConfig {
                profile: issuer.profile.clone().or_else(|| tls.profile.clone()),
                ..issuer.clone()
            })
            .collect()
    };
    let (list, dry_run) = match config.mode {
        Mode::Production => {
            let list = match tls.issuers.is_empty() {
                true => vec![single(LETS_ENCRYPT)],
                false => listed(),
            };
            (list, single(LETS_ENCRYPT_STAGING))
        }
        Mode::Staging => (
            vec![single(LETS_ENCRYPT_STAGING)],
            single(LETS_ENCRYPT_STAGING),
        ),
        Mode::Acme => {
            let list = match (tls.issuers.is_empty(), &tls.directory_url) {
                (false, _) => listed(),
                (true, Some(url)) => vec![single(url.as_str())],
                (true, None) => return None,
            };
            let first = list[0].clone();
            (list, first)
        }
        Mode::Local | Mode::Manual | Mode::Off => return None,
    };
    Some((list, dry_run))
}

/// How logs and the status name the CA at `directory`: its host, with the
/// port when there is one (two test CAs on one machine differ by it).
pub fn ca_name(directory: &Url) -> String {
    let host = directory.host_str().unwrap_or("the CA");
    match directory.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// A CA that failed an order another CA then filled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PassedOver {
    /// Its ACME directory.
    pub directory: String,
    /// Why it issued nothing.
    pub error: String,
}

/// The certifiers of the CAs, in order; never empty.
#[derive(Clone)]
pub struct Issuers {
    first: Certifier,
    rest: Vec<Certifier>,
}

impl Issuers {
    pub fn new(first: Certifier, rest: Vec<Certifier>) -> Issuers {
        Issuers { first, rest }
    }

    /// The CA every order goes to first.
    pub fn first(&self) -> &Certifier {
        &self.first
    }

    pub fn iter(&self) -> impl Iterator<Item = &Certifier> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// The CA whose [`Certifier::identity`] is `identity`, if configured.
    pub fn find(&self, identity: &str) -> Option<&Certifier> {
        self.iter().find(|c| c.identity() == identity)
    }

    /// The CA tried after `certifier`, if any.
    pub fn after(&self, certifier: &Certifier) -> Option<&Certifier> {
        self.iter()
            .skip_while(|c| c.identity() != certifier.identity())
            .nth(1)
    }

    /// The CAs' [`Certifier::identity`], in order.
    pub fn identities(&self) -> Vec<&str> {
        self.iter().map(Certifier::identity).collect()
    }

    /// Whether the CA with this directory is configured.
    pub fn has_directory(&self, directory: &str) -> bool {
        self.iter().any(|c| c.directory().as_str() == directory)
    }

    /// The CAs' names, in order, for messages.
    pub fn names(&self) -> String {
        self.iter()
            .map(Certifier::name)
            .collect::<Vec<_>>()
            .join(", then ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, no_env};

    fn config(tls: &str) -> Config {
        let text = format!("[domains]\nnames = [\"example.com\"]\n[tls]\n{tls}");
        Config::from_parts(None, &text, &Overrides::default(), &no_env).unwrap()
    }

    fn directories(list: &[IssuerConfig]) -> Vec<&str> {
        list.iter().map(|i| i.directory_url.as_str()).collect()
    }

    const TWO: &str = "[[tls.issuers]]\ndirectory_url = \"https://one.example/dir\"\n\
        [[tls.issuers]]\ndirectory_url = \"https://two.example/dir\"\nprofile = \"classic\"\n";

    #[test]
    fn production_orders_from_lets_encrypt_unless_issuers_are_listed() {
        let (list, dry_run) = configured(&config("mode = \"production\"\n")).unwrap();
        assert_eq!(directories(&list), [LETS_ENCRYPT]);
        assert_eq!(dry_run.directory_url.as_str(), LETS_ENCRYPT_STAGING);

        let (list, dry_run) = configured(&config(&format!(
            "mode = \"production\"\nprofile = \"tlsserver\"\n{TWO}"
        )))
        .unwrap();
        assert_eq!(
            directories(&list),
            ["https://one.example/dir", "https://two.example/dir"]
        );
        let profiles: Vec<_> = list
            .iter()
            .map(|i| i.profile.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(
            profiles,
            ["tlsserver", "classic"],
            "[tls] profile unless the table names one"
        );
        assert_eq!(dry_run.directory_url.as_str(), LETS_ENCRYPT_STAGING);
    }

    #[test]
    fn acme_mode_dry_runs_against_its_first_ca_and_other_modes_keep_their_own() {
        let (list, dry_run) = configured(&config(&format!("mode = \"acme\"\n{TWO}"))).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(dry_run.directory_url.as_str(), "https://one.example/dir");

        let (list, _) = configured(&config(&format!("mode = \"staging\"\n{TWO}"))).unwrap();
        assert_eq!(directories(&list), [LETS_ENCRYPT_STAGING]);
        assert!(configured(&config(&format!("mode = \"local\"\n{TWO}"))).is_none());
    }

    #[test]
    fn a_ca_is_named_by_its_host_and_any_port() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(ca_name(&url(LETS_ENCRYPT)), "acme-v02.api.letsencrypt.org");
        assert_eq!(
            ca_name(&url("https://127.0.0.1:14000/dir")),
            "127.0.0.1:14000"
        );
    }
}
