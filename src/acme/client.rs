//! One certification through instant-acme: load (or create and store) the
//! account for this CA, order a certificate for the site's domains, answer the
//! challenges, finalize with a fresh key and download the chain.
//!
//! The answers go out through [`Challenges`] (this node's memory, and every
//! node's in a cluster) before the CA is told to validate, and are withdrawn
//! once it has, whatever the outcome.
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
use super::store::Storage;
use crate::config::{Challenge, ExternalAccountBinding};
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
    /// Times each request to the CA.
    pub metrics: crate::metrics::Metrics,
}

/// The [`CertifierSettings::identity`] of the in-process CA.
pub const LOCAL_CA: &str = "local";

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
    /// a new account is stored under `lease`.
    pub async fn certify(&self, domains: &[SiteName], lease: &Lease) -> anyhow::Result<IssuedCert> {
        let account = self.account(lease).await?;
        match self.order(&account, domains, lease).await {
            // A CA may forget accounts (the local CA keeps them in memory, a test
            // CA restarts); make a new one once rather than failing forever.
            Err(e) if problem_type(&e).is_some_and(|t| t.ends_with(":accountDoesNotExist")) => {
                tracing::info!("the CA no longer knows our account; creating a new one");
                let account = self.create_account(lease).await?;
                self.order(&account, domains, lease).await
            }
            result => result,
        }
    }

    /// Deletes what an earlier order left published (dns-01 records noted
    /// before a crash).
    pub async fn clean_leftovers(&self, lease: &Lease) {
        self.challenges.clean_leftovers(lease).await;
    }

    async fn order(
        &self,
        account: &Account,
        domains: &[SiteName],
        lease: &Lease,
    ) -> anyhow::Result<IssuedCert> {
        // `*.example.com` as it is: RFC 8555 section 7.1.3.
        let identifiers: Vec<Identifier> = domains
            .iter()
            .map(|d| Identifier::Dns(d.to_string()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("creating the order")?;
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

    /// The CA's suggested renewal window for `bundle` (RFC 9773), if it offers one.
    pub async fn renewal_window(
        &self,
        bundle: &CertBundle,
        lease: &Lease,
    ) -> anyhow::Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let Some(aki) = &bundle.authority_key_id else {
            return Ok(None);
        };
        let account = self.account(lease).await?;
        let id = instant_acme::CertificateIdentifier::new(
            rustls::pki_types::Der::from(aki.as_slice()),
            rustls::pki_types::Der::from(bundle.serial.as_slice()),
        );
        match account.renewal_info(&id).await {
            Ok((info, _)) => {
                let at = |t: time::OffsetDateTime| {
                    DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
                };
                Ok(Some((
                    at(info.suggested_window.start),
                    at(info.suggested_window.end),
                )))
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
