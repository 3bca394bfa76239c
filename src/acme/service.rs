//! Puts the certificate machinery together for a configuration: the store and
//! its lock, the temporary certificate, the local CA (local mode), the ACME
//! client for the mode's directory, and the manager. Used by `quire serve` and
//! by `quire cert renew` when no server is running. With a cluster the store
//! is the shared one, the manager takes the lease per order, and a follower
//! keeps the node's local copy in the data directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use url::Url;

use super::backup;
use super::certs::CertStore;
use super::challenges::Challenges;
use super::client::{Certifier, CertifierSettings, LOCAL_CA, check_offered};
use super::dns01::Dns01;
use super::follow::CertFollower;
use super::http::AcmeRoots;
use super::issuers::{self, Issuers};
use super::lease::{Lease, LeaseSlot};
use super::local_ca::{self, LocalCa, LocalCaSettings, ValidationTarget};
use super::manager::{CertManager, LeasePolicy};
use super::pg_store::PgStore;
use super::schedule::RenewalPolicy;
use super::store::{FileStore, Storage, StorageError};
use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::config::{Config, IssuerConfig, Mode};
use crate::datadir::{DataDir, create_private_dir};
use crate::net::{self, Inherited, SocketName};
use crate::tls::{CertBundle, CertResolver};
use crate::web::ChallengeMap;

/// The local CA's HTTPS endpoint, ready for a listener.
pub struct LocalCaEndpoint {
    pub ca: Arc<LocalCa>,
    pub socket: Arc<TcpListener>,
    pub app: axum::Router,
    pub directory: Url,
}

pub struct AcmeParts {
    pub resolver: Arc<CertResolver>,
    pub manager: CertManager,
    pub local_ca: Option<LocalCaEndpoint>,
    /// Tells the manager about a new domain list (configuration reload).
    pub domains: tokio::sync::watch::Sender<Vec<crate::names::SiteName>>,
    /// With a cluster: brings the shared certificate into this node.
    pub follower: Option<CertFollower>,
}

/// Where a listener bound to `addr` is reachable from this machine.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// The lease that makes one process the manager of the certificates.
const CERTIFICATES_LEASE: &str = "certificates";
/// Long enough to outlast an order (two minutes at most) between renewals.
const CERTIFICATES_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Takes the lease that makes one process the manager of the certificates in
/// `data`; the certificate manager renews it, and dropping it gives it up.
pub async fn lock_certificates(data: &Path, clock: &SharedClock) -> anyhow::Result<Lease> {
    create_private_dir(data).with_context(|| {
        format!(
            "cannot create the data directory {}; create it, or set [paths] data to a writable folder",
            data.display()
        )
    })?;
    FileStore::new(data.to_path_buf(), clock.clone())
        .acquire(CERTIFICATES_LEASE, CERTIFICATES_LEASE_TTL)
        .await
        .map_err(|e| match e {
            StorageError::Locked(_) => anyhow::anyhow!(
                "another quire process manages the certificates in {}; stop it, or give this one another [paths] data",
                data.display()
            ),
            other => other.into(),
        })
}

/// Prepares certificates for an ACME mode, reading the data directory only:
/// the caller holds, or waits for, [`lock_certificates`] and puts it in
/// `lease` before the manager runs (with a cluster, before the follower
/// writes the local copy). `http` and `https` are the bound listener
/// addresses, where the local CA validates; its own socket may come from
/// `sockets`. Never waits on the cluster's engine: what is served first is
/// the local copy.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    config: &Config,
    clock: &SharedClock,
    challenges: ChallengeMap,
    http: SocketAddr,
    https: SocketAddr,
    sockets: &mut Inherited,
    env: &dyn Fn(&str) -> Option<String>,
    metrics: &crate::metrics::Metrics,
    lease: LeaseSlot,
    cluster: Option<&Cluster>,
) -> anyhow::Result<AcmeParts> {
    let data = &config.paths.data;
    create_private_dir(data).with_context(|| {
        format!(
            "cannot create the data directory {}; create it, or set [paths] data to a writable folder",
            data.display()
        )
    })?;
    if let Some(archive) = backup::restore_if_missing(data)? {
        tracing::warn!(
            "no certificate state in {}; restored it from the backup {}",
            data.display(),
            archive.display()
        );
    }
    let local: Arc<dyn Storage> = Arc::new(FileStore::new(data.clone(), clock.clone()));
    let shared = cluster.map(|cluster| PgStore::new(cluster.clone()));
    let storage: Arc<dyn Storage> = match &shared {
        Some(shared) => Arc::new(shared.clone()),
        None => local.clone(),
    };

    let primary = config.canonical_domain().clone();
    let temporary = CertBundle::temporary(&config.domains, clock.now())?;
    let resolver = CertResolver::new(temporary);

    let mut challenges = Challenges::new(challenges, resolver.clone(), cluster.cloned());
    if let Some(dns) = &config.tls.dns {
        challenges = challenges.with_dns(Dns01::new(dns.clone(), storage.clone(), clock.clone()));
    }
    let certifier = |issuer: &IssuerConfig, identity: String, name: String, roots: AcmeRoots| {
        Certifier::new(
            CertifierSettings {
                identity,
                directory: issuer.directory_url.clone(),
                name,
                roots,
                contacts: config.tls.contacts.clone(),
                eab: issuer.eab.clone(),
                challenge: config.tls.challenge,
                preferred_chain: config.tls.preferred_chain.clone(),
                profile: issuer.profile.clone(),
                metrics: metrics.clone(),
            },
            storage.clone(),
            challenges.clone(),
        )
    };
    let (local_ca, issuers, dry_run_certifier) = match config.mode {
        Mode::Local => {
            let socket = net::listen(config.listen.local_ca, SocketName::LocalCa, sockets).await?;
            let bound = socket.local_addr()?;
            let ca = LocalCa::open(LocalCaSettings {
                dir: DataDir::new(data).local_ca(),
                domains: config.domains.iter().map(|d| d.to_string()).collect(),
                lifetimes: local_ca::Lifetimes {
                    classic: config.tls.local_ca_lifetime,
                    tlsserver: config.tls.local_ca_tlsserver_lifetime,
                    shortlived: config.tls.local_ca_shortlived_lifetime,
                },
                validation: ValidationTarget {
                    http: reachable(http),
                    tls: reachable(https),
                },
                clock: clock.clone(),
            })?;
            let base = Url::parse(&format!("https://{}", reachable(bound)))?;
            let directory = local_ca::directory_url(&base);
            let app = ca.router(base);
            let issuer = IssuerConfig {
                directory_url: directory.clone(),
                eab: None,
                profile: config.tls.profile.clone(),
                roots: None,
            };
            if let Some(profile) = &config.tls.profile {
                check_offered(profile, local_ca::profile_names(), &directory)?;
            }
            let local = certifier(
                &issuer,
                LOCAL_CA.to_string(),
                "the local CA".to_string(),
                AcmeRoots::Pem(ca.root_pem().to_string()),
            )?;
            let endpoint = LocalCaEndpoint {
                ca,
                socket: Arc::new(socket),
                app,
                directory,
            };
            (
                Some(endpoint),
                Issuers::new(local.clone(), Vec::new()),
                local,
            )
        }
        _ => {
            let (list, dry_run) = issuers::configured(config)
                .context("this mode does not obtain certificates by ACME")?;
            let make = |issuer: &IssuerConfig| {
                let roots = AcmeRoots::for_issuer(issuer.roots.as_deref(), env)?;
                certifier(
                    issuer,
                    issuer.directory_url.to_string(),
                    issuers::ca_name(&issuer.directory_url),
                    roots,
                )
            };
            let mut certifiers = list.iter().map(make).collect::<anyhow::Result<Vec<_>>>()?;
            check_profiles(&certifiers).await?;
            let first = certifiers.remove(0);
            (None, Issuers::new(first, certifiers), make(&dry_run)?)
        }
    };
    let policy = match config.mode {
        Mode::Local => RenewalPolicy::local(config.tls.renew_before_days, config.tls.check_every),
        _ => RenewalPolicy::public(config.tls.renew_before_days, config.tls.check_every),
    };
    let domains = tokio::sync::watch::Sender::new(config.domains.clone());
    let store = CertStore::new(storage, primary.clone());
    let local = CertStore::new(local, primary);
    let (leases, follower) = match shared {
        Some(shared) => (
            LeasePolicy::PerOrder,
            Some(CertFollower {
                shared,
                store: store.clone(),
                local: local.clone(),
                local_lease: lease,
                resolver: resolver.clone(),
                domains: domains.subscribe(),
                data_dir: data.clone(),
                post_issue_hook: config.tls.post_issue_hook.clone(),
                clock: clock.clone(),
            }),
        ),
        None => (LeasePolicy::HeldForLife(lease), None),
    };
    let mut manager = CertManager {
        domains: config.domains.clone(),
        store,
        issuers,
        dry_run_certifier,
        resolver: resolver.clone(),
        clock: clock.clone(),
        policy,
        data_dir: data.clone(),
        post_issue_hook: config.tls.post_issue_hook.clone(),
        alerts: super::alert::AlertPolicy(config.tls.alerts.clone()),
        current: None,
        metrics: metrics.clone(),
        domain_updates: domains.subscribe(),
        leases,
        unreachable: 0,
    };
    match &follower {
        None => manager.load_stored().await?,
        // The local copy, at once: the engine may be down, and the
        // follower catches up from the shared store when it answers.
        Some(_) => {
            if let Some(stored) = local.load(None).await? {
                match stored.bundle.check(&config.domains, clock.now()) {
                    Ok(()) => resolver.install(std::slice::from_ref(&stored.bundle)),
                    Err(e) => tracing::warn!(
                        "the local copy of the certificate cannot serve ({e}); waiting for the cluster's"
                    ),
                }
                manager.current = Some(stored.bundle);
            }
        }
    }
    Ok(AcmeParts {
        resolver,
        manager,
        local_ca,
        domains,
        follower,
    })
}

/// How long the start waits for the CAs' directories, all asked at once: a
/// CA that hangs must not keep the site from serving its stored certificate.
const PROFILE_CHECK_WAIT: Duration = Duration::from_secs(5);

/// Refuses to start with a profile a CA does not offer, when its directory
/// can be read within [`PROFILE_CHECK_WAIT`]; a CA that cannot be read now
/// is asked again before each order, and the server starts meanwhile.
async fn check_profiles(certifiers: &[Certifier]) -> anyhow::Result<()> {
    let mut checks = tokio::task::JoinSet::new();
    for certifier in certifiers {
        let Some(profile) = certifier.profile().cloned() else {
            continue;
        };
        let certifier = certifier.clone();
        checks.spawn(async move {
            let why = match tokio::time::timeout(PROFILE_CHECK_WAIT, certifier.offered_profiles()).await {
                Ok(Ok(offered)) => {
                    let offered = offered.iter().map(String::as_str);
                    return Ok(check_offered(&profile, offered, certifier.directory())?);
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("no answer within {PROFILE_CHECK_WAIT:?}"),
            };
            tracing::warn!(
                "cannot read the profiles {} offers ({why}); profile \"{profile}\" is checked again before each order",
                certifier.name()
            );
            anyhow::Ok(())
        });
    }
    while let Some(checked) = checks.join_next().await {
        checked.context("checking a CA's profiles")??;
    }
    Ok(())
}

/// The local CA's root certificate file, where clients find it.
pub fn local_ca_root(config: &Config) -> PathBuf {
    DataDir::new(&config.paths.data).local_ca().join("root.pem")
}
