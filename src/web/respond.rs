//! Turns a [`Resource`] into a response: content negotiation over the
//! precompressed variants (`Vary: Accept-Encoding`), strong ETags per variant,
//! conditional requests (304), and byte ranges (206/416) on the identity body.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::site::Resource;
use crate::site::snapshot::CachePolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

/// Picks the best variant the client accepts, by q-value, brotli first on ties.
fn negotiate(resource: &Resource, accept: Option<&HeaderValue>) -> Encoding {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return Encoding::Identity;
    };
    let mut q_br = None;
    let mut q_gzip = None;
    let mut q_any = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match coding.as_str() {
            "br" => q_br = Some(q),
            "gzip" | "x-gzip" => q_gzip = Some(q),
            "*" => q_any = Some(q),
            _ => {}
        }
    }
    let br = if resource.brotli.is_some() {
        q_br.or(q_any).unwrap_or(0.0)
    } else {
        0.0
    };
    let gz = if resource.gzip.is_some() {
        q_gzip.or(q_any).unwrap_or(0.0)
    } else {
        0.0
    };
    if br > 0.0 && br >= gz {
        Encoding::Brotli
    } else if gz > 0.0 {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

fn etag(resource: &Resource, encoding: Encoding) -> &HeaderValue {
    let headers = &resource.headers;
    match encoding {
        Encoding::Identity => &headers.etag_identity,
        Encoding::Gzip => &headers.etag_gzip,
        Encoding::Brotli => &headers.etag_brotli,
    }
}

/// `If-None-Match` uses the weak comparison (RFC 9110 13.1.2).
fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

fn not_modified_since(headers: &HeaderMap, last_modified: Option<SystemTime>) -> bool {
    let (Some(modified), Some(since)) = (
        last_modified,
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok()),
    ) else {
        return false;
    };
    // HTTP dates have whole seconds.
    let modified_secs = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let since_secs = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    modified_secs <= since_secs
}

enum RangeRequest {
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range; several ranges are answered in full, which
/// RFC 9110 allows.
fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        match end.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(suffix) => (len.saturating_sub(suffix), len.saturating_sub(1)),
            Err(_) => return RangeRequest::Full,
        }
    } else {
        let Ok(first) = start.parse::<u64>() else {
            return RangeRequest::Full;
        };
        let last = if end.is_empty() {
            len.saturating_sub(1)
        } else {
            match end.parse::<u64>() {
                Ok(last) if last >= first => last.min(len.saturating_sub(1)),
                _ => return RangeRequest::Full,
            }
        };
        (first, last)
    };
    if len == 0 || range.0 >= len {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range.0, range.1)
    }
}

/// `If-Range` lets a range apply only if the representation is unchanged.
fn if_range_holds(headers: &HeaderMap, etag: &str, last_modified: Option<SystemTime>) -> bool {
    let Some(value) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return value == etag;
    }
    match (httpdate::parse_http_date(value), last_modified) {
        (Ok(date), Some(modified)) => {
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            };
            secs(date) == secs(modified)
        }
        _ => false,
    }
}

/// Builds the response for `resource`. `status` is 200 for found resources
/// and 404 for the not-found page (which never answers 304 or ranges).
pub fn resource(
    resource: &Resource,
    cache: CachePolicy,
    request: &HeaderMap,
    status: StatusCode,
) -> Response<Bytes> {
    let wants_range = status == StatusCode::OK
        && resource.last_modified.is_some()
        && request.contains_key(header::RANGE);
    let encoding = if wants_range {
        Encoding::Identity
    } else {
        negotiate(resource, request.get(header::ACCEPT_ENCODING))
    };
    let tag = etag(resource, encoding);
    let tag_text = tag.to_str().expect("ASCII etag");

    let mut headers = HeaderMap::with_capacity(10);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache.header()),
    );
    if status == StatusCode::OK {
        headers.insert(header::ETAG, tag.clone());
    }
    if resource.varies_by_encoding() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(modified) = &resource.headers.last_modified {
        headers.insert(header::LAST_MODIFIED, modified.clone());
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }

    if status == StatusCode::OK {
        let fresh = match request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            Some(inm) => none_match(inm, tag_text),
            None => not_modified_since(request, resource.last_modified),
        };
        if fresh {
            return finish(StatusCode::NOT_MODIFIED, headers, Bytes::new());
        }
    }

    headers.insert(header::CONTENT_TYPE, resource.headers.content_type.clone());
    let body = match encoding {
        Encoding::Identity => resource.identity.clone(),
        Encoding::Gzip => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resource.gzip.clone().expect("negotiated")
        }
        Encoding::Brotli => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            resource.brotli.clone().expect("negotiated")
        }
    };

    if wants_range && if_range_holds(request, tag_text, resource.last_modified) {
        let len = body.len() as u64;
        let range = request
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match parse_range(range, len) {
            RangeRequest::Full => {}
            RangeRequest::Partial(first, last) => {
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")).expect("range"),
                );
                return finish(
                    StatusCode::PARTIAL_CONTENT,
                    headers,
                    body.slice(first as usize..=last as usize),
                );
            }
            RangeRequest::Unsatisfiable => {
                headers.remove(header::CONTENT_TYPE);
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{len}")).expect("range"),
                );
                return finish(StatusCode::RANGE_NOT_SATISFIABLE, headers, Bytes::new());
            }
        }
    }
    finish(status, headers, body)
}

fn finish(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::ResourceKind;
    use std::sync::Arc;

    fn page() -> Arc<Resource> {
        Resource::new(
            ResourceKind::Page,
            "text/html".into(),
            Bytes::from("<p>hello</p>".repeat(100)),
            None,
            &|_| None,
        )
    }

    fn asset() -> Arc<Resource> {
        Resource::new(
            ResourceKind::Asset,
            "image/png".into(),
            Bytes::from_static(b"0123456789"),
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
            &|_| None,
        )
    }

    fn req(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn negotiation_honours_q_values() {
        let r = page();
        let pick = |ae: &str| negotiate(&r, Some(&HeaderValue::from_str(ae).unwrap()));
        assert_eq!(pick("gzip, deflate, br"), Encoding::Brotli);
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0.5, gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0, gzip;q=0"), Encoding::Identity);
        assert_eq!(pick("*"), Encoding::Brotli);
        assert_eq!(pick("identity"), Encoding::Identity);
        assert_eq!(negotiate(&r, None), Encoding::Identity);
    }

    #[test]
    fn etag_revalidation_per_variant() {
        let r = page();
        let first = resource(
            &r,
            CachePolicy::Revalidate,
            &req(&[("accept-encoding", "gzip")]),
            StatusCode::OK,
        );
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(tag.ends_with("-gz\""));
        let again = resource(
            &r,
            CachePolicy::Revalidate,
            &req(&[("accept-encoding", "gzip"), ("if-none-match", &tag)]),
            StatusCode::OK,
        );
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let weak = format!("W/{tag}");
        let again = resource(
            &r,
            CachePolicy::Revalidate,
            &req(&[("accept-encoding", "gzip"), ("if-none-match", &weak)]),
            StatusCode::OK,
        );
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = resource(
            &r,
            CachePolicy::Revalidate,
            &req(&[("accept-encoding", "br"), ("if-none-match", &tag)]),
            StatusCode::OK,
        );
        assert_eq!(other.status(), StatusCode::OK);
        let missing = resource(
            &r,
            CachePolicy::Revalidate,
            &req(&[("if-none-match", &tag)]),
            StatusCode::NOT_FOUND,
        );
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn ranges() {
        let r = asset();
        let get = |range: &str| {
            resource(
                &r,
                CachePolicy::Short,
                &req(&[("range", range)]),
                StatusCode::OK,
            )
        };
        let partial = get("bytes=2-4");
        assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(partial.headers()[header::CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(
            get("bytes=-3").headers()[header::CONTENT_RANGE],
            "bytes 7-9/10"
        );
        assert_eq!(
            get("bytes=8-").headers()[header::CONTENT_RANGE],
            "bytes 8-9/10"
        );
        assert_eq!(
            get("bytes=5-100").headers()[header::CONTENT_RANGE],
            "bytes 5-9/10"
        );
        assert_eq!(get("bytes=10-").status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            get("bytes=10-").headers()[header::CONTENT_RANGE],
            "bytes */10"
        );
        assert_eq!(get("bytes=0-1,4-5").status(), StatusCode::OK);
        assert_eq!(get("items=0-1").status(), StatusCode::OK);
        assert_eq!(get("bytes=5-2").status(), StatusCode::OK);
        let stale = resource(
            &r,
            CachePolicy::Short,
            &req(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]),
            StatusCode::OK,
        );
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn if_modified_since() {
        let r = asset();
        let lm = httpdate::fmt_http_date(r.last_modified.unwrap());
        let resp = resource(
            &r,
            CachePolicy::Short,
            &req(&[("if-modified-since", &lm)]),
            StatusCode::OK,
        );
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let old = "Mon, 01 Jan 2001 00:00:00 GMT";
        let resp = resource(
            &r,
            CachePolicy::Short,
            &req(&[("if-modified-since", old)]),
            StatusCode::OK,
        );
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
