//! One certification through instant-acme: load (or create and store) the
//! account for this CA, order a certificate for the site's domains, answer the
//! challenges, finalize with a fresh key and download the chain.
//!
//! The answers go out through [`Challenges`] (this node's memory, and every
//! node's in a cluster) before the CA is told to validate, and are withdrawn
//! once it has, whatever the outcome.
//!
//! The order carries the configured profile (once the CA's directory is
//! seen to list it) and, for a renewal, the certificate it replaces (RFC 9773
//! §5); a CA that refuses the latter gets the order again without it.
//!
//! Waiting is driven by events where there are any: the http-01 handler tells
//! us the moment the CA fetched the token, so the order is polled right then;
//! after that, polling starts fast and backs off, honouring `Retry-After`, up
//! to a cap, so a slow CA is neither hammered nor waited on forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, Order, OrderStatus,
};
use url::Url;

use super::certs::IssuedCert;
use super::challenges::{Answer, Challenges, Published};
use super::http::{AcmeHttp, AcmeRoots};
use super::lease::Lease;
use super::schedule::AriWindow;
use super::store::Storage;
use crate::config::{Challenge, ExternalAccountBinding, ProfileName};
use crate::names::{DnsName, SiteName};
use crate::tls::CertBundle;

/// How long the CA gets to fetch an http-01 token before we poll anyway.
const FETCH_WAIT: Duration = Duration::from_secs(10);
/// How long validation or issuance may take before the attempt fails.
const ORDER_DEADLINE: Duration = Duration::from_secs(120);
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_secs(5);

/// Where and how to get certificates.
#[derive(Clone)]
pub struct CertifierSettings {
    pub directory: Url,
    /// How logs name the CA ("the local CA", "acme-v02.api.letsencrypt.org").
    pub name: String,
    /// What identifies the CA across restarts, to tell whether the stored
    /// certificate came from it: the directory URL, or [`LOCAL_CA`] (whose
    /// port may change from run to run).
    pub identity: String,
    pub roots: AcmeRoots,
    pub contacts: Vec<String>,
    pub eab: Option<ExternalAccountBinding>,
    pub challenge: Challenge,
    /// `[tls] preferred_chain`: the chain to serve among the CA's.
    pub preferred_chain: Option<String>,
    /// The ACME profile to order; the CA's default when `None`.
    pub profile: Option<ProfileName>,
    /// Times each request to the CA.
    pub metrics: crate::metrics::Metrics,
}

/// The [`CertifierSettings::identity`] of the in-process CA.
pub const LOCAL_CA: &str = "local";

/// `[tls] profile` names a profile the CA's directory does not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileNotOffered {
    pub profile: String,
    pub directory: String,
    /// What the directory lists, sorted; empty when it lists none.
    pub offered: Vec<String>,
}

impl std::fmt::Display for ProfileNotOffered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            profile,
            directory,
            offered,
        } = self;
        match offered.is_empty() {
            true => write!(
                f,
                "[tls] profile = \"{profile}\", but the CA at {directory} offers no profiles; remove [tls] profile"
            ),
            false => write!(
                f,
                "[tls] profile = \"{profile}\", but the CA at {directory} offers only {}; change [tls] profile to one of them, or remove it",
                offered.join(", ")
            ),
        }
    }
}

/// Whether `profile` is among the `offered` ones of the CA at `directory`.
pub fn check_offered<'a>(
    profile: &ProfileName,
    offered: impl IntoIterator<Item = &'a str>,
    directory: &Url,
) -> Result<(), ProfileNotOffered> {
    let mut offered: Vec<String> = offered.into_iter().map(str::to_owned).collect();
    if offered.iter().any(|p| p == profile.as_str()) {
        return Ok(());
    }
    offered.sort();
    Err(ProfileNotOffered {
        profile: profile.to_string(),
        directory: directory.to_string(),
        offered,
    })
}

/// Whether an error from placing an order that named the certificate it
/// replaces may be the CA refusing that field (or, Unsupported, the client
/// declining to send it to a CA without renewal information): the order is
/// then placed again without it. A rate limit or an outage is no such
/// refusal, and is left to the retry schedule.
fn replaces_refused(error: &instant_acme::Error) -> bool {
    match error {
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Api(problem) => problem.r#type.as_deref().is_some_and(|t| {
            t.ends_with(":alreadyReplaced")
                || t.ends_with(":malformed")
                || t.ends_with(":unauthorized")
        }),
        instant_acme::Error::Other(e) => e.to_string().contains("replaces"),
        _ => false,
    }
}

/// Obtains certificates from one ACME CA.
#[derive(Clone)]
pub struct Certifier {
    settings: CertifierSettings,
    http: AcmeHttp,
    storage: Arc<dyn Storage>,
    challenges: Challenges,
}

impl Certifier {
    pub fn new(
        settings: CertifierSettings,
        storage: Arc<dyn Storage>,
        challenges: Challenges,
    ) -> anyhow::Result<Certifier> {
        Ok(Certifier {
            http: AcmeHttp::new(&settings.roots, settings.metrics.clone())?,
            settings,
            storage,
            challenges,
        })
    }

    pub fn directory(&self) -> &Url {
        &self.settings.directory
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    pub fn profile(&self) -> Option<&ProfileName> {
        self.settings.profile.as_ref()
    }

    /// The profiles the CA's directory lists (draft-ietf-acme-profiles).
    pub async fn offered_profiles(&self) -> anyhow::Result<Vec<String>> {
        let body = self.http.get_small(&self.settings.directory).await?;
        let directory: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
            format!(
                "{} is not an ACME directory (not JSON); check the directory URL",
                self.settings.directory
            )
        })?;
        Ok(directory["meta"]["profiles"]
            .as_object()
            .map(|profiles| profiles.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// `acme/<ca-host>/account.json`; one account per CA.
    fn account_key(&self) -> String {
        account_key(&self.settings.directory)
    }

    /// The stored account, or a new one stored under `lease`.
    async fn account(&self, lease: &Lease) -> anyhow::Result<Account> {
        if let Some(bytes) = self.storage.get(&self.account_key()).await? {
            match serde_json::from_slice::<AccountCredentials>(&bytes) {
                Ok(credentials) => {
                    return Account::builder_with_http(Box::new(self.http.clone()))
                        .from_credentials(credentials)
                        .await
                        .with_context(|| {
                            format!("cannot reach the ACME CA at {}", self.settings.directory)
                        });
                }
                Err(e) => tracing::warn!(
                    "stored ACME account {} is unreadable ({e}); creating a new account",
                    self.account_key()
                ),
            }
        }
        self.create_account(lease).await
    }

    async fn create_account(&self, lease: &Lease) -> anyhow::Result<Account> {
        let contacts: Vec<&str> = self.settings.contacts.iter().map(String::as_str).collect();
        let eab = match &self.settings.eab {
            Some(eab) => {
                let hmac = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(eab.hmac.trim_end_matches('='))
                    .context(
                        "[tls] eab_hmac is not base64url; copy it exactly as your CA gave it",
                    )?;
                Some(ExternalAccountKey::new(eab.kid.clone(), &hmac))
            }
            None => None,
        };
        let (account, credentials) = Account::builder_with_http(Box::new(self.http.clone()))
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.to_string(),
                eab.as_ref(),
            )
            .await
            .with_context(|| format!("creating an ACME account at {}", self.settings.directory))?;
        self.storage
            .put(
                &self.account_key(),
                &serde_json::to_vec(&credentials).context("serializing the ACME account")?,
                lease,
            )
            .await?;
        tracing::info!(
            account = account.id(),
            "created an ACME account at {}",
            self.settings.directory
        );
        Ok(account)
    }

    /// Orders, validates, finalizes and downloads a certificate for `domains`;
    /// a new account is stored under `lease`. `replaces` is the certificate
    /// this one succeeds, issued by this CA.
    pub async fn certify(
        &self,
        domains: &[SiteName],
        lease: &Lease,
        replaces: Option<&CertBundle>,
    ) -> anyhow::Result<IssuedCert> {
        let account = self.account(lease).await?;
        match self.order(&account, domains, lease, replaces).await {
            // A CA may forget accounts (the local CA keeps them in memory, a test
            // CA restarts); make a new one once rather than failing forever.
            Err(e) if problem_type(&e).is_some_and(|t| t.ends_with(":accountDoesNotExist")) => {
                tracing::info!("the CA no longer knows our account; creating a new one");
                let account = self.create_account(lease).await?;
                self.order(&account, domains, lease, replaces).await
            }
            result => result,
        }
    }

    /// Deletes what an earlier order left published (dns-01 records noted
    /// before a crash).
    pub async fn clean_leftovers(&self, lease: &Lease) {
        self.challenges.clean_leftovers(lease).await;
    }

    /// Places the order: with the profile, checked against the directory
    /// first, and naming the certificate it replaces, unless the CA refuses that.
    async fn place(
        &self,
        account: &Account,
        identifiers: &[Identifier],
        replaces: Option<&CertBundle>,
    ) -> anyhow::Result<Order> {
        let profile = self.settings.profile.as_ref();
        if let Some(profile) = profile {
            check_offered(
                profile,
                account.profiles().map(|p| p.name),
                &self.settings.directory,
            )?;
        }
        let order = || match profile {
            Some(profile) => NewOrder::new(identifiers).profile(profile.as_str()),
            None => NewOrder::new(identifiers),
        };
        let Some((replaced, serial)) = replaces.and_then(|b| Some((cert_id(b)?, b))) else {
            return account
                .new_order(&order())
                .await
                .context("creating the order");
        };
        let serial = crate::acme::follow::serial_hex(serial);
        match account.new_order(&order().replaces(replaced)).await {
            Ok(placed) => {
                tracing::info!("the order replaces the certificate with serial {serial}");
                Ok(placed)
            }
            Err(e) if replaces_refused(&e) => {
                match &e {
                    instant_acme::Error::Unsupported(_) => tracing::debug!(
                        "the CA offers no renewal information, so the order does not name the certificate it replaces"
                    ),
                    _ => tracing::warn!(
                        "the CA refused the order naming the certificate it replaces (serial {serial}): {e}; ordering again without it"
                    ),
                }
                account
                    .new_order(&order())
                    .await
                    .context("creating the order")
            }
            Err(e) => Err(anyhow::Error::new(e).context("creating the order")),
        }
    }

    async fn order(
        &self,
        account: &Account,
        domains: &[SiteName],
        lease: &Lease,
        replaces: Option<&CertBundle>,
    ) -> anyhow::Result<IssuedCert> {
        // `*.example.com` as it is: RFC 8555 section 7.1.3.
        let identifiers: Vec<Identifier> = domains
            .iter()
            .map(|d| Identifier::Dns(d.to_string()))
            .collect();
        let mut order = self.place(account, &identifiers, replaces).await?;
        let answers = self.answers(&mut order).await?;
        let published = self.challenges.publish(answers, lease).await?;
        let validated = self.validate(&mut order, &published).await;
        published.withdraw().await;
        validated?;
        tracing::debug!("order ready; finalizing");

        let names: Vec<String> = domains.iter().map(SiteName::to_string).collect();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order
            .finalize_csr(csr.der())
            .await
            .context("finalizing the order")?;
        self.wait_for(&mut order, OrderStatus::Valid).await?;
        tracing::debug!("order valid; downloading");
        let chain_pem = order
            .certificate()
            .await
            .context("downloading the certificate")?
            .ok_or_else(|| anyhow!("the CA marked the order valid but sent no certificate"))?;
        let chain_pem = self.preferred(chain_pem).await?;
        Ok(IssuedCert {
            chain_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// The chain `[tls] preferred_chain` names, among the CA's default
    /// (`chain_pem`) and the alternates it linked to.
    async fn preferred(&self, chain_pem: String) -> anyhow::Result<String> {
        let alternates = self.http.take_alternates();
        let Some(preferred) = self.settings.preferred_chain.as_deref() else {
            return Ok(chain_pem);
        };
        if alternates.is_empty() {
            return super::chains::choose(chain_pem, alternates, Some(preferred), |_| async {
                anyhow::Ok(String::new())
            })
            .await;
        }
        let stored = self
            .storage
            .get(&self.account_key())
            .await?
            .ok_or_else(|| anyhow!("the ACME account is not stored"))?;
        let signer =
            super::chains::PostAsGet::new(&self.http, &stored, &self.settings.directory).await?;
        let signer = &signer;
        super::chains::choose(chain_pem, alternates, Some(preferred), |url| async move {
            signer.fetch(&url).await
        })
        .await
    }

    /// The answers to the order's pending authorizations, by the configured
    /// challenge type.
    async fn answers(&self, order: &mut Order) -> anyhow::Result<Vec<Answer>> {
        let kind = self.challenge_type();
        let mut answers = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.context("fetching an authorization")?;
            let name = identifier_name(authz.identifier().identifier);
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => bail!("the CA reports the authorization for {name} as {other:?}"),
            }
            let challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                anyhow!("the CA offers no {kind:?} challenge for {name}; set [tls] challenge to another type")
            })?;
            let key_authorization = challenge.key_authorization();
            answers.push(match kind {
                // A wildcard's authorization names its base (RFC 8555
                // section 7.1.4), whose `_acme-challenge` label answers.
                ChallengeType::Dns01 => Answer::Dns01 {
                    name: DnsName::parse(&name)
                        .with_context(|| format!("the CA asks for dns-01 on `{name}`"))?,
                    value: key_authorization.dns_value(),
                },
                ChallengeType::TlsAlpn01 => Answer::TlsAlpn01 {
                    name,
                    digest: key_authorization.digest().as_ref().to_vec(),
                },
                _ => Answer::Http01 {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_string(),
                },
            });
        }
        Ok(answers)
    }

    /// With the answers published: asks the CA to validate each pending
    /// authorization and waits until the order is ready.
    async fn validate(&self, order: &mut Order, published: &Published) -> anyhow::Result<()> {
        let kind = self.challenge_type();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.context("fetching an authorization")?;
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            let name = identifier_name(authz.identifier().identifier);
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                anyhow!("the CA no longer offers a {kind:?} challenge for {name}")
            })?;
            challenge
                .set_ready()
                .await
                .with_context(|| format!("asking the CA to validate {name}"))?;
        }
        tracing::debug!("challenges answered; waiting for the CA");
        published.wait_fetched(FETCH_WAIT).await;
        self.wait_for(order, OrderStatus::Ready).await
    }

    fn challenge_type(&self) -> ChallengeType {
        match self.settings.challenge {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Dns01 => ChallengeType::Dns01,
        }
    }

    /// Polls `order` until it reaches `want`, fails, or the deadline passes.
    async fn wait_for(&self, order: &mut Order, want: OrderStatus) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut delay = Duration::ZERO;
        loop {
            let state = order.refresh().await.context("polling the order")?;
            if let Some(problem) = &state.error {
                bail!("the CA failed the order: {problem}");
            }
            match state.status {
                status if status == want => return Ok(()),
                OrderStatus::Invalid => return Err(explain_invalid(order).await),
                OrderStatus::Valid if want == OrderStatus::Ready => return Ok(()),
                _ => {}
            }
            let wait = self.http.take_retry_after().unwrap_or(delay).min(MAX_POLL);
            tracing::debug!(status = ?state.status, ?wait, "polled the order");
            if started.elapsed() + wait > ORDER_DEADLINE {
                bail!(
                    "the CA did not finish the order within {}s (status {:?})",
                    ORDER_DEADLINE.as_secs(),
                    state.status
                );
            }
            tokio::time::sleep(wait).await;
            delay = (delay * 2).max(FIRST_POLL).min(MAX_POLL);
        }
    }

    /// The CA's suggested renewal window for `bundle` (RFC 9773) and how
    /// long it asks to be left alone (Retry-After); `None` when it offers no
    /// renewal information (or the certificate names no key identifier).
    pub async fn renewal_info(
        &self,
        bundle: &CertBundle,
        lease: &Lease,
    ) -> anyhow::Result<Option<(AriWindow, Duration)>> {
        let Some(id) = cert_id(bundle) else {
            return Ok(None);
        };
        let account = self.account(lease).await?;
        let answer = account.renewal_info(&id).await;
        // Its Retry-After is for this resource only; an order's polling must
        // not wait it out.
        self.http.take_retry_after();
        match answer {
            Ok((info, retry_after)) => {
                let at = |t: time::OffsetDateTime| {
                    DateTime::<Utc>::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
                };
                let window = AriWindow::new(
                    at(info.suggested_window.start),
                    at(info.suggested_window.end),
                )
                .ok_or_else(|| {
                    anyhow!("the CA suggested a renewal window that ends before it starts")
                })?;
                Ok(Some((window, retry_after)))
            }
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context("fetching renewal information")),
        }
    }
}

/// `acme/<ca-host>/account.json`: where the account at the CA of `directory`
/// is stored; one account per CA.
pub fn account_key(directory: &Url) -> String {
    let host = directory.host_str().unwrap_or("ca");
    match directory.port() {
        Some(port) => format!("{}/{host}_{port}/account.json", crate::datadir::ACME),
        None => format!("{}/{host}/account.json", crate::datadir::ACME),
    }
}

/// `bundle`'s ARI CertID (RFC 9773 §4.1): its authority key identifier and
/// serial; `None` without the former.
fn cert_id(bundle: &CertBundle) -> Option<instant_acme::CertificateIdentifier<'static>> {
    let aki = bundle.authority_key_id.as_ref()?;
    Some(
        instant_acme::CertificateIdentifier::new(
            rustls::pki_types::Der::from(aki.as_slice()),
            rustls::pki_types::Der::from(bundle.serial.as_slice()),
        )
        .into_owned(),
    )
}

fn identifier_name(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Dns(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// The RFC 8555 error type of an ACME error, if the CA sent one.
pub fn problem_type(error: &anyhow::Error) -> Option<&str> {
    error
        .chain()
        .find_map(|e| match e.downcast_ref::<instant_acme::Error>() {
            Some(instant_acme::Error::Api(problem)) => problem.r#type.as_deref(),
            _ => None,
        })
}

/// Why an order went invalid, from its authorizations' challenge errors.
async fn explain_invalid(order: &mut Order) -> anyhow::Error {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = identifier_name(authz.identifier().identifier);
        if let Ok(state) = authz.refresh().await {
            for challenge in &state.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(format!("{name}: {problem}"));
                }
            }
        }
    }
    if reasons.is_empty() {
        anyhow!("the CA marked the order invalid without saying why")
    } else {
        anyhow!(
            "validation failed: {}; check that the domain points at this server and that port 80 (http-01) or 443 (tls-alpn-01) reaches quire, or for dns-01 that the CA sees the zone's TXT records",
            reasons.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_the_ca_does_not_offer_is_refused_with_the_list() {
        let directory: Url = "https://ca.test/directory".parse().unwrap();
        let profile: ProfileName = "shortlived".parse().unwrap();
        assert_eq!(
            check_offered(&profile, ["classic", "shortlived"], &directory),
            Ok(())
        );
        let refused = check_offered(&profile, ["tlsserver", "classic"], &directory)
            .unwrap_err()
            .to_string();
        assert_eq!(
            refused,
            "[tls] profile = \"shortlived\", but the CA at https://ca.test/directory offers only classic, tlsserver; change [tls] profile to one of them, or remove it"
        );
        let none = check_offered(&profile, [], &directory)
            .unwrap_err()
            .to_string();
        assert!(
            none.contains("offers no profiles; remove [tls] profile"),
            "{none}"
        );
    }

    #[test]
    fn only_a_refusal_of_the_replaced_certificate_places_the_order_again() {
        let problem = |kind: &str| {
            instant_acme::Error::Api(
                serde_json::from_value(serde_json::json!({
                    "type": format!("urn:ietf:params:acme:error:{kind}"),
                    "detail": "x",
                    "status": 400
                }))
                .unwrap(),
            )
        };
        for refused in ["alreadyReplaced", "malformed", "unauthorized"] {
            assert!(replaces_refused(&problem(refused)), "{refused}");
        }
        for kept in ["rateLimited", "serverInternal", "invalidProfile"] {
            assert!(!replaces_refused(&problem(kept)), "{kept}");
        }
        assert!(replaces_refused(&instant_acme::Error::Unsupported(
            "ACME renewal information (ARI)"
        )));
    }
}
