//! The public side of the server, as two [`Respond`](crate::net::Respond)ers
//! the listeners call for every request: [`Site`] serves the site from the
//! live [`SiteSnapshot`](crate::site::SiteSnapshot) (pages, redirects, the 404
//! page) with security headers and the canonical-host redirect, and
//! [`HttpSide`] is the plain HTTP side when the site is on HTTPS: ACME
//! challenges, and a 301 to HTTPS for everything else. Both answer from
//! memory, in the call; neither cares which listener feeds it, and neither
//! touches the disk.

pub mod challenge;
pub mod client_ip;
mod http_side;
pub mod kind;
pub mod measure;
pub mod path;
pub mod respond;
mod site;
pub mod visits;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::config::Config;
use crate::names::SiteName;
pub use challenge::ChallengeMap;
pub use http_side::HttpSide;
pub use site::Site;

/// How the site presents itself: its canonical origin, the other names that
/// redirect to it, and which headers to send.
#[derive(Debug, Clone)]
pub struct SitePolicy {
    /// `https://blog.example.com` or `https://localhost:8443`, no trailing slash.
    pub origin: String,
    /// Host names (lowercase, no port) that redirect to the origin.
    pub redirect_hosts: HashSet<String>,
    /// Wildcard names: the hosts they cover redirect too, except the
    /// canonical one (`blog.example.com` under `*.example.com`).
    pub redirect_wildcards: Vec<SiteName>,
    /// The canonical name and the origin's host, which a wildcard may cover
    /// but which never redirect (the origin's would loop).
    pub canonical_hosts: Vec<String>,
    pub hsts: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl SitePolicy {
    pub fn from_config(config: &Config, tls: bool) -> SitePolicy {
        SitePolicy {
            origin: config
                .site
                .base_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            redirect_hosts: config
                .domains
                .iter()
                .skip(1)
                .filter_map(SiteName::host)
                .map(|d| d.as_str().to_string())
                .collect(),
            redirect_wildcards: config
                .domains
                .iter()
                .filter(|d| d.is_wildcard())
                .cloned()
                .collect(),
            canonical_hosts: [
                Some(config.canonical_domain().as_str()),
                config.site.base_url.host_str(),
            ]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect(),
            hsts: tls && config.tls.hsts,
            trusted_proxies: config.listen.trusted_proxies.clone(),
        }
    }
}

impl SitePolicy {
    /// Whether a request for `host` (lowercase, no port) is redirected to
    /// the canonical origin.
    pub fn redirects(&self, host: &str) -> bool {
        self.redirect_hosts.contains(host)
            || (!self.canonical_hosts.iter().any(|c| c == host)
                && self.redirect_wildcards.iter().any(|w| w.covers(host)))
    }
}

/// The policy in force; swapped whole when the configuration is reloaded.
pub type LivePolicy = Arc<arc_swap::ArcSwap<SitePolicy>>;

pub fn live_policy(policy: SitePolicy) -> LivePolicy {
    Arc::new(arc_swap::ArcSwap::from_pointee(policy))
}

/// The same path on the canonical origin; a path no page can have goes to
/// the home page rather than being echoed back.
fn origin_target(origin: &str, raw_path: &str) -> String {
    let path = path::normalize(raw_path).map_or_else(|| "/".to_string(), |p| path::location(&p));
    format!("{origin}{path}")
}

/// A permanent redirect, keeping the query.
fn redirect(target: &str, query: Option<&str>) -> Response<Bytes> {
    let location = match query {
        Some(q) => format!("{target}?{q}"),
        None => target.to_string(),
    };
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

/// A short plain-text answer.
fn text(status: StatusCode, message: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(message.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
