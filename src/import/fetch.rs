//! The import's only network access: a feed given as a URL, and images with
//! `--fetch-images`. Every fetch is bounded: 30 s in all (redirects
//! included), 5 redirects, 20 MB, and the content type must be what was
//! asked for, so that a login page is not imported as a feed.

use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use hyper::body::Body;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::error_chain::with_causes;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;
const MAX_BYTES: usize = 20 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Feed,
    Image,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {why}; check the URL, or save the file and import that")]
    Failed { url: String, why: String },
    #[error("{url}: answered {status}; check the URL")]
    Status { url: String, status: StatusCode },
    #[error("{url}: more than {MAX_REDIRECTS} redirects; give the final URL")]
    Redirects { url: String },
    #[error("{url}: larger than {} MB; save it and import the file", MAX_BYTES / 1024 / 1024)]
    TooLarge { url: String },
    #[error("{url}: no answer within {} s; try again, or save the file and import that", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: is {content_type}, not {wanted}; give the {wanted}'s own URL")]
    WrongType {
        url: String,
        content_type: String,
        wanted: &'static str,
    },
}

/// Fetches `url`, following redirects, within the bounds.
pub fn get(url: &Url, wanted: Wanted) -> Result<Vec<u8>, FetchError> {
    let failed = |why: String| FetchError::Failed {
        url: url.to_string(),
        why,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    runtime.block_on(async {
        match tokio::time::timeout(TIMEOUT, fetch(url, wanted)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
            }),
        }
    })
}

async fn fetch(start: &Url, wanted: Wanted) -> Result<Vec<u8>, FetchError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(|e| FetchError::Failed {
            url: start.to_string(),
            why: format!("cannot load the system's trusted roots: {e}"),
        })?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, String> = Client::builder(TokioExecutor::new()).build(connector);
    let mut url = start.clone();
    for _ in 0..=MAX_REDIRECTS {
        let failed = |why: String| FetchError::Failed {
            url: url.to_string(),
            why,
        };
        let request = http::Request::get(url.as_str())
            .header(header::USER_AGENT, concat!("quire/", env!("CARGO_PKG_VERSION")))
            .header(
                header::ACCEPT,
                match wanted {
                    Wanted::Feed => "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.8",
                    Wanted::Image => "image/*",
                },
            )
            .body(String::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| failed(with_causes(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| failed(format!("{status} without a Location")))?;
            url = url
                .join(location)
                .map_err(|e| failed(format!("redirect to `{location}`: {e}")))?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
            });
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let fits = match wanted {
            Wanted::Feed => {
                content_type.is_empty()
                    || ["xml", "rss", "atom"]
                        .iter()
                        .any(|k| content_type.contains(k))
            }
            Wanted::Image => content_type.starts_with("image/"),
        };
        if !fits {
            return Err(FetchError::WrongType {
                url: url.to_string(),
                content_type,
                wanted: match wanted {
                    Wanted::Feed => "a feed",
                    Wanted::Image => "an image",
                },
            });
        }
        return collect(response.into_body(), &url).await;
    }
    Err(FetchError::Redirects {
        url: start.to_string(),
    })
}

/// The body, refused once it passes [`MAX_BYTES`].
async fn collect<B>(mut body: B, url: &Url) -> Result<Vec<u8>, FetchError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    let mut bytes = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| FetchError::Failed {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_BYTES {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                });
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}
