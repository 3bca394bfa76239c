//! The ACME endpoints (RFC 8555 §7, RFC 9773 renewal information) over HTTP:
//! the routes, with one handler per resource in `accounts`, `issuance` and
//! `certificates`, what they share (reading and authenticating a POST, what
//! every response carries) in `http`, and the JSON each resource shows in `views`.

mod accounts;
mod certificates;
mod http;
mod issuance;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::json;

use super::LocalCa;
use super::problem::Problem;
use super::profiles::Profile;
use http::{Api, json_response, stamp};

impl LocalCa {
    /// The ACME API, with `base` (e.g. `https://127.0.0.1:8444`) as the address
    /// clients reach it at; the directory is at [`super::directory_url`].
    pub fn router(self: &Arc<Self>, base: url::Url) -> Router {
        router(self.clone(), &base)
    }
}

fn router(ca: Arc<LocalCa>, base: &url::Url) -> Router {
    let api = Arc::new(Api {
        ca,
        base: base.as_str().trim_end_matches('/').to_owned(),
    });
    let routes = Router::new()
        .route("/directory", only_get(get(directory)))
        .route("/acme/new-nonce", only_get(get(new_nonce)))
        .route("/acme/new-account", only_post(post(accounts::new_account)))
        .route("/acme/new-order", only_post(post(issuance::new_order)))
        .route(
            "/acme/revoke-cert",
            only_post(post(certificates::revoke_cert)),
        )
        .route("/acme/key-change", only_post(post(accounts::key_change)))
        .route("/acme/acct/{id}", only_post(post(accounts::account)))
        .route(
            "/acme/acct/{id}/orders",
            only_post(post(accounts::account_orders)),
        )
        .route("/acme/order/{id}", only_post(post(issuance::order)))
        .route(
            "/acme/order/{id}/finalize",
            only_post(post(issuance::finalize)),
        )
        .route("/acme/authz/{id}", only_post(post(issuance::authorization)))
        .route(
            "/acme/chall/{authz}/{kind}",
            only_post(post(issuance::challenge)),
        )
        .route(
            "/acme/cert/{id}",
            only_post(post(certificates::certificate)),
        )
        .route(
            "/acme/renewal-info/{id}",
            only_get(get(certificates::renewal_info)),
        )
        .fallback(|| async { Problem::not_found("resource") })
        .layer(middleware::from_fn_with_state(api.clone(), stamp))
        .with_state(api);
    match base.path().trim_end_matches('/') {
        "" => routes,
        prefix => Router::new().nest(prefix, routes),
    }
}

fn only_get(route: MethodRouter<Arc<Api>>) -> MethodRouter<Arc<Api>> {
    route.fallback(|| async {
        Problem::malformed("this resource only answers GET")
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
    })
}

fn only_post(route: MethodRouter<Arc<Api>>) -> MethodRouter<Arc<Api>> {
    route.fallback(|| async {
        Problem::malformed("this resource only answers POST (use POST-as-GET to read it)")
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
    })
}

async fn directory(State(api): State<Arc<Api>>) -> Response {
    let body = json!({
        "newNonce": api.url("acme/new-nonce"),
        "newAccount": api.url("acme/new-account"),
        "newOrder": api.url("acme/new-order"),
        "revokeCert": api.url("acme/revoke-cert"),
        "keyChange": api.url("acme/key-change"),
        "renewalInfo": api.url("acme/renewal-info"),
        "meta": {
            "externalAccountRequired": false,
            "profiles": Profile::ALL.iter()
                .map(|p| (p.name().to_owned(), json!(p.description())))
                .collect::<serde_json::Map<_, _>>(),
        },
    });
    json_response(StatusCode::OK, &body, None)
}

async fn new_nonce(method: Method) -> Response {
    // RFC 8555 §7.2: HEAD answers 200, GET 204; the nonce itself comes from `stamp`.
    let status = if method == Method::HEAD {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    (status, [(header::CACHE_CONTROL, "no-store")]).into_response()
}
