//! Reaching PostgreSQL: the connection string (validated with the config),
//! TLS over our rustls (the platform's roots, or `[cluster] ca_file`'s when
//! set), and the bounded pool. Every connection names its node and purpose in
//! `application_name`, so an operator (or a test) can tell them apart in
//! `pg_stat_activity`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::ClusterConfig;

/// Connections per node: enough for flushes, the follower and an order at
/// once, few enough that ten nodes stay far below `max_connections`.
const POOL_SIZE: usize = 8;
/// Connecting, waiting for a free connection, and checking one: each bounded.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS side of every connection. A `ca_file` that cannot be read leaves
/// no root trusted: connections that need TLS then fail with the reason in
/// the engine's state, and the node keeps serving.
pub(super) fn tls(config: &ClusterConfig) -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let client = match &config.ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            match CertificateDer::pem_file_iter(path) {
                Ok(certs) => {
                    for cert in certs.flatten() {
                        if let Err(e) = roots.add(cert) {
                            tracing::error!("[cluster] ca_file {}: {e}", path.display());
                        }
                    }
                }
                Err(e) => tracing::error!(
                    "cannot read [cluster] ca_file {}: {e}; point it at the PEM root of your PostgreSQL server's certificate",
                    path.display()
                ),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => match rustls_platform_verifier::Verifier::new_with_extra_roots([], provider) {
            Ok(verifier) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth(),
            Err(e) => {
                tracing::error!(
                    "cannot load the system's trusted roots for PostgreSQL: {e}; set [cluster] ca_file"
                );
                builder
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }
        },
    };
    MakeRustlsConnect::new(client)
}

/// The connection settings for one purpose of this node (`pool`, `listen`).
pub(super) fn settings(config: &ClusterConfig, purpose: &str) -> tokio_postgres::Config {
    let mut settings = config.postgres.config();
    settings.application_name(format!("quire/{}/{purpose}", config.node));
    if settings.get_connect_timeout().is_none() {
        settings.connect_timeout(POOL_TIMEOUT);
    }
    settings
}

/// `purpose` names the connections: `pool` for a node, `command` for a
/// command that reads without joining.
pub(super) fn pool(config: &ClusterConfig, tls: MakeRustlsConnect, purpose: &str) -> Pool {
    let manager = Manager::from_config(
        settings(config, purpose),
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime and timeouts builds")
}

/// Why the pool gave no connection, with the engine's own reason.
pub(super) fn pool_error_text(error: &PoolError) -> String {
    match error {
        PoolError::Backend(e) => error_text(e),
        PoolError::Timeout(_) => {
            "no connection within 5 s (the server is slow, or every connection is busy)".into()
        }
        other => other.to_string(),
    }
}

/// A tokio-postgres error with its cause: its own text is often only "error
/// connecting to server".
pub(super) fn error_text(error: &tokio_postgres::Error) -> String {
    match (error.as_db_error(), std::error::Error::source(error)) {
        (Some(db), _) => db.to_string(),
        (None, Some(source)) => format!("{error}: {source}"),
        (None, None) => error.to_string(),
    }
}
