//! What a response was, for request metrics and reading statistics alike:
//! told by its status, then by the [`ResourceKind`] that `respond` marks
//! every site response with. Nothing is guessed from headers.

use axum::http::StatusCode;
use axum::response::Response;

use crate::metrics::RouteKind;
use crate::site::ResourceKind;

/// Page, feed, asset (revalidations and ranges included), redirect, 404,
/// or other (errors and refusals). A success that is no site resource (an
/// ACME challenge answer) is an asset.
pub fn route_kind(response: &Response) -> RouteKind {
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return RouteKind::NotFound;
    }
    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
        return RouteKind::Redirect;
    }
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return RouteKind::Other;
    }
    match response.extensions().get::<ResourceKind>() {
        Some(ResourceKind::Page) => RouteKind::Page,
        Some(ResourceKind::Feed) => RouteKind::Feed,
        Some(ResourceKind::NotFound) => RouteKind::NotFound,
        Some(ResourceKind::Meta | ResourceKind::Asset) | None => RouteKind::Asset,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::{HeaderMap, HeaderValue, header};
    use bytes::Bytes;

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

    fn served(resource: &Resource, request: &HeaderMap) -> Response {
        respond::resource(resource, CachePolicy::Revalidate, request, StatusCode::OK)
    }

    #[test]
    fn a_response_is_what_its_resource_is_not_what_its_type_says() {
        let feed = resource(ResourceKind::Feed, "application/atom+xml; charset=utf-8");
        let sitemap = resource(ResourceKind::Meta, "application/xml; charset=utf-8");
        let page = resource(ResourceKind::Page, "text/html; charset=utf-8");
        let none = HeaderMap::new();
        assert_eq!(route_kind(&served(&page, &none)), RouteKind::Page);
        assert_eq!(route_kind(&served(&feed, &none)), RouteKind::Feed);
        assert_eq!(route_kind(&served(&sitemap, &none)), RouteKind::Asset);

        let etag = served(&feed, &none).headers()[header::ETAG].clone();
        let mut revalidating = HeaderMap::new();
        revalidating.insert(header::IF_NONE_MATCH, etag);
        let revalidated = served(&feed, &revalidating);
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(route_kind(&revalidated), RouteKind::Feed, "a feed fetch");
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
        assert_eq!(route_kind(&missing), RouteKind::NotFound);
        let with_status = |status: StatusCode| {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            route_kind(&response)
        };
        assert_eq!(
            with_status(StatusCode::MOVED_PERMANENTLY),
            RouteKind::Redirect
        );
        assert_eq!(
            with_status(StatusCode::METHOD_NOT_ALLOWED),
            RouteKind::Other
        );
        assert_eq!(with_status(StatusCode::OK), RouteKind::Asset, "no resource");
    }
}
