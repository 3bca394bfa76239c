//! What a response was, for request metrics and reading statistics alike:
//! told by its status, then by the [`ResourceKind`] of the site resource it
//! carries, if any. Nothing is guessed from headers.

use http::StatusCode;

use crate::metrics::RouteKind;
use crate::site::ResourceKind;

/// Page, feed, asset (revalidations and ranges included), redirect, 404,
/// or other (errors and refusals). A success that is no site resource (an
/// ACME challenge answer) is an asset.
pub fn route_kind(status: StatusCode, resource: Option<ResourceKind>) -> RouteKind {
    if status == StatusCode::NOT_FOUND {
        return RouteKind::NotFound;
    }
    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
        return RouteKind::Redirect;
    }
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return RouteKind::Other;
    }
    match resource {
        Some(ResourceKind::Page) => RouteKind::Page,
        Some(ResourceKind::Feed) => RouteKind::Feed,
        Some(ResourceKind::NotFound) => RouteKind::NotFound,
        Some(ResourceKind::Meta | ResourceKind::Asset) | None => RouteKind::Asset,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{HeaderMap, header};

    use super::*;
    use crate::site::Resource;
    use crate::site::snapshot::CachePolicy;
    use crate::web::respond;

    fn resource(kind: ResourceKind, content_type: &str) -> Arc<Resource> {
        Resource::new(
            kind,
            content_type.into(),
            Bytes::from_static(b"<p>hello</p>"),
            None,
            &|_| None,
        )
    }

    fn served(resource: &Resource, request: &HeaderMap) -> RouteKind {
        let response =
            respond::resource(resource, CachePolicy::Revalidate, request, StatusCode::OK);
        route_kind(response.status(), Some(resource.kind))
    }

    #[test]
    fn a_response_is_what_its_resource_is_not_what_its_type_says() {
        let feed = resource(ResourceKind::Feed, "application/atom+xml; charset=utf-8");
        let sitemap = resource(ResourceKind::Meta, "application/xml; charset=utf-8");
        let page = resource(ResourceKind::Page, "text/html; charset=utf-8");
        let none = HeaderMap::new();
        assert_eq!(served(&page, &none), RouteKind::Page);
        assert_eq!(served(&feed, &none), RouteKind::Feed);
        assert_eq!(served(&sitemap, &none), RouteKind::Asset);

        let etag = respond::resource(&feed, CachePolicy::Revalidate, &none, StatusCode::OK)
            .headers()[header::ETAG]
            .clone();
        let mut revalidating = HeaderMap::new();
        revalidating.insert(header::IF_NONE_MATCH, etag);
        let revalidated = respond::resource(
            &feed,
            CachePolicy::Revalidate,
            &revalidating,
            StatusCode::OK,
        );
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            route_kind(revalidated.status(), Some(feed.kind)),
            RouteKind::Feed,
            "a feed fetch"
        );
    }

    #[test]
    fn the_status_comes_first() {
        let not_found = resource(ResourceKind::NotFound, "text/html; charset=utf-8");
        let missing = respond::resource(
            &not_found,
            CachePolicy::Revalidate,
            &HeaderMap::new(),
            StatusCode::NOT_FOUND,
        );
        assert_eq!(
            route_kind(missing.status(), Some(not_found.kind)),
            RouteKind::NotFound
        );
        let page = Some(ResourceKind::Page);
        assert_eq!(
            route_kind(StatusCode::MOVED_PERMANENTLY, page),
            RouteKind::Redirect
        );
        assert_eq!(
            route_kind(StatusCode::METHOD_NOT_ALLOWED, page),
            RouteKind::Other
        );
        assert_eq!(
            route_kind(StatusCode::OK, None),
            RouteKind::Asset,
            "no resource"
        );
    }
}
