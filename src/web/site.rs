//! [`Site`]: the public site's answer to a request, in the order a request
//! meets it: a request with a body is refused unread, another configured
//! name is redirected to the canonical origin, then the path is looked up in
//! the live snapshot (a resource, a redirect, a missing trailing slash, or
//! the 404 page). Every answer gets the security headers, is counted
//! (metrics, and reading statistics for views), and logged at debug level.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::measure::Exchange;
use super::{LivePolicy, SitePolicy, client_ip, kind, path, redirect, respond, text, visits};
use crate::metrics::{Metrics, RouteKind};
use crate::net::Respond;
use crate::site::snapshot::CachePolicy;
use crate::site::{LiveSite, Route};
use crate::stats::Recorder;

/// A policy the default theme satisfies: no scripts, styles and fonts from the
/// site itself, images from anywhere over HTTPS (posts may embed them).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; script-src 'none'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The public site; with a recorder, page views are counted.
pub struct Site {
    pub site: LiveSite,
    pub policy: LivePolicy,
    pub recorder: Option<Recorder>,
    pub metrics: Metrics,
}

impl Respond for Site {
    fn respond(&self, request: &Request<Incoming>, peer: SocketAddr) -> Response<Bytes> {
        let policy = self.policy.load();
        let client = client_ip::client_ip(peer.ip(), request.headers(), &policy.trusted_proxies);
        let exchange = Exchange::start(client);
        let (mut response, kind) = self.answer(request, &policy, client);
        security_headers(&mut response, policy.hsts);
        exchange.finish(&self.metrics, request, &response, kind);
        response
    }
}

impl Site {
    fn answer<B: http_body::Body>(
        &self,
        request: &Request<B>,
        policy: &SitePolicy,
        client: IpAddr,
    ) -> (Response<Bytes>, RouteKind) {
        if has_body(request) {
            let mut response = text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "This site is read-only and takes no request bodies.\n",
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return (response, RouteKind::Other);
        }
        if (!policy.redirect_hosts.is_empty() || !policy.redirect_wildcards.is_empty())
            && request_host(request).is_some_and(|host| policy.redirects(&host))
        {
            let uri = request.uri();
            let target = super::origin_target(&policy.origin, uri.path());
            return (redirect(&target, uri.query()), RouteKind::Redirect);
        }
        let (response, resource) = self.serve(request);
        let kind = kind::route_kind(response.status(), resource);
        if let Some(recorder) = &self.recorder {
            visits::record(recorder, request, client, response.status(), kind);
        }
        (response, kind)
    }

    /// The site's own answer, with the kind of resource it carries.
    fn serve<B>(
        &self,
        request: &Request<B>,
    ) -> (Response<Bytes>, Option<crate::site::ResourceKind>) {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "This site is read-only: use GET or HEAD.\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return (response, None);
        }
        let snapshot = self.site.load();
        let uri = request.uri();
        let not_found = || {
            let page = &snapshot.not_found;
            let response = respond::resource(
                page,
                CachePolicy::Revalidate,
                request.headers(),
                StatusCode::NOT_FOUND,
            );
            (response, Some(page.kind))
        };
        let Some(path) = path::normalize(uri.path()) else {
            return not_found();
        };
        match snapshot.route(&path) {
            Some(Route::Resource { resource, cache }) => (
                respond::resource(resource, *cache, request.headers(), StatusCode::OK),
                Some(resource.kind),
            ),
            Some(Route::Redirect(target)) => (redirect(target, uri.query()), None),
            None if !path.ends_with('/') && snapshot.route(&format!("{path}/")).is_some() => (
                redirect(&format!("{}/", path::location(&path)), uri.query()),
                None,
            ),
            None => not_found(),
        }
    }
}

/// The site only reads: a request that carries a body is refused unread.
fn has_body<B: http_body::Body>(request: &Request<B>) -> bool {
    request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
        || request.body().size_hint().lower() > 0
}

/// The host a request was sent to: `:authority` for HTTP/2, `Host` otherwise.
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let host = request.uri().host().map(str::to_string).or_else(|| {
        request
            .headers()
            .get(header::HOST)?
            .to_str()
            .ok()
            .map(str::to_string)
    })?;
    let host = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_string()
        }
        _ => host,
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

fn security_headers(response: &mut Response<Bytes>, hsts: bool) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}
