//! Conformance tests: the router driven in-process with JWS signed by test keys,
//! each error checked for its RFC 8555 type and status, and the challenge
//! validations run against real listeners on loopback.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use x509_parser::prelude::*;

use super::jws::{Jwk, b64};
use super::orders::{Account, Status};
use super::state;
use super::{LocalCa, LocalCaSettings, ValidationTarget, directory_url};
use crate::clock::{Clock, ManualClock};
use crate::tls::listener::PeerAddr;

const BASE: &str = "https://127.0.0.1:8444";
const LIFETIME: StdDuration = StdDuration::from_secs(3 * 24 * 3600);

fn start() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn unused_target() -> ValidationTarget {
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    ValidationTarget {
        http: nowhere,
        tls: nowhere,
    }
}

enum TestKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    fn es256() -> TestKey {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        TestKey::Es256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    fn ed25519() -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        TestKey::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            TestKey::Es256(_) => "ES256",
            TestKey::Ed25519(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        match self {
            TestKey::Es256(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            TestKey::Ed25519(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref())})
            }
        }
    }

    /// RFC 7638, computed independently of the server's code.
    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = match self {
            TestKey::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
                jwk["x"], jwk["y"]
            ),
            TestKey::Ed25519(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, jwk["x"]),
        };
        b64(Sha256::digest(canonical.as_bytes()))
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Es256(key) => key
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            TestKey::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }

    /// A flattened JWS; `payload` None is POST-as-GET.
    fn jws(&self, protected: &Value, payload: Option<&Value>) -> Value {
        let protected = b64(protected.to_string());
        let payload = payload.map(|p| b64(p.to_string())).unwrap_or_default();
        let signature = b64(self.sign(format!("{protected}.{payload}").as_bytes()));
        json!({"protected": protected, "payload": payload, "signature": signature})
    }
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn location(&self) -> String {
        self.headers[header::LOCATION].to_str().unwrap().to_owned()
    }

    #[track_caller]
    fn assert_problem(&self, status: StatusCode, kind: &str) {
        let body = self.json();
        assert_eq!(
            body["type"],
            format!("urn:ietf:params:acme:error:{kind}"),
            "{body}"
        );
        assert_eq!(self.status, status, "{body}");
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

struct Harness {
    ca: Arc<LocalCa>,
    router: Router,
    clock: Arc<ManualClock>,
    /// The client address the listener would have recorded for each request.
    peer: Mutex<IpAddr>,
    _dir: tempfile::TempDir,
}

fn url(path: &str) -> String {
    format!("{BASE}/{path}")
}

impl Harness {
    fn new(target: ValidationTarget) -> Harness {
        Harness::open(tempfile::tempdir().unwrap(), &[], target)
    }

    /// What a restart with `domains` configured sees: the same folder, clock and
    /// validation target, and none of the ACME objects held in memory.
    fn restart(self, domains: &[&str]) -> Harness {
        let target = self.ca.settings.validation;
        Harness::open(self._dir, domains, target)
    }

    fn open(dir: tempfile::TempDir, domains: &[&str], target: ValidationTarget) -> Harness {
        let clock = ManualClock::new(start());
        let ca = LocalCa::open(LocalCaSettings {
            dir: dir.path().join("local-ca"),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            leaf_lifetime: LIFETIME,
            validation: target,
            clock: clock.clone(),
        })
        .unwrap();
        let router = ca.router(BASE.parse().unwrap());
        Harness {
            ca,
            router,
            clock,
            peer: Mutex::new("192.0.2.1".parse().unwrap()),
            _dir: dir,
        }
    }

    /// Sends the following requests as if from `ip`.
    fn as_peer(&self, ip: &str) {
        *self.peer.lock().unwrap() = ip.parse().unwrap();
    }

    async fn send(&self, mut request: Request<Body>) -> Response {
        let peer = SocketAddr::new(*self.peer.lock().unwrap(), 40000);
        request.extensions_mut().insert(PeerAddr(peer));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Response {
            status,
            headers,
            body,
        }
    }

    async fn post_raw(&self, path: &str, body: impl Into<Body>) -> Response {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/jose+json")
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    async fn nonce(&self) -> String {
        let response = self
            .send(
                Request::head("/acme/new-nonce")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.headers[header::CACHE_CONTROL], "no-store");
        response.headers["replay-nonce"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Signs with `jwk` (no kid) or the given kid, a fresh nonce, and the right url.
    async fn signed(
        &self,
        key: &TestKey,
        kid: Option<&str>,
        path: &str,
        payload: Option<&Value>,
    ) -> Response {
        let mut protected =
            json!({"alg": key.alg(), "nonce": self.nonce().await, "url": url(path)});
        match kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => protected["jwk"] = key.jwk(),
        }
        let body = key.jws(&protected, payload).to_string();
        self.post_raw(&format!("/{path}"), body).await
    }

    async fn account(&self, key: &TestKey) -> String {
        let response = self
            .signed(
                key,
                None,
                "acme/new-account",
                Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:admin@example.test"]})),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
        response.location()
    }

    async fn order(&self, key: &TestKey, kid: &str, names: &[&str]) -> (String, Value) {
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let response = self
            .signed(
                key,
                Some(kid),
                "acme/new-order",
                Some(&json!({ "identifiers": identifiers })),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
        (response.location(), response.json())
    }

    /// POST-as-GET of a full URL.
    async fn fetch(&self, key: &TestKey, kid: &str, full_url: &str) -> Response {
        let path = full_url.strip_prefix(&format!("{BASE}/")).unwrap();
        self.signed(key, Some(kid), path, None).await
    }

    /// Marks every authorization of an order valid, as a passed validation would.
    fn authorize(&self, order: &Value) {
        let mut state = self.ca.lock();
        for authz in order["authorizations"].as_array().unwrap() {
            let id = authz.as_str().unwrap().rsplit('/').next().unwrap();
            state.authorizations.get_mut(id).unwrap().status = Status::Valid;
        }
        for order in state.orders.values_mut() {
            order.status = Status::Ready;
        }
    }

    async fn finalize(&self, key: &TestKey, kid: &str, order: &Value, names: &[&str]) -> Response {
        let csr_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&csr_key).unwrap();
        let path = order["finalize"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("{BASE}/"))
            .unwrap()
            .to_owned();
        self.signed(key, Some(kid), &path, Some(&json!({"csr": b64(csr.der())})))
            .await
    }

    /// Account, order, authorized, finalized: the certificate's DER and URL.
    async fn issued(&self, key: &TestKey, kid: &str, name: &str) -> (Vec<u8>, String) {
        let (_, order) = self.order(key, kid, &[name]).await;
        self.authorize(&order);
        let finalized = self.finalize(key, kid, &order, &[name]).await;
        assert_eq!(finalized.status, StatusCode::OK, "{}", finalized.json());
        let cert_url = finalized.json()["certificate"].as_str().unwrap().to_owned();
        let chain = self.fetch(key, kid, &cert_url).await;
        let leaf = CertificateDer::pem_slice_iter(&chain.body)
            .next()
            .unwrap()
            .unwrap();
        (leaf.to_vec(), cert_url)
    }
}

#[tokio::test]
async fn directory_lists_endpoints_and_every_response_has_nonce_and_index_link() {
    let h = Harness::new(unused_target());
    let response = h
        .send(Request::get("/directory").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let directory = response.json();
    for (field, path) in [
        ("newNonce", "acme/new-nonce"),
        ("newAccount", "acme/new-account"),
        ("newOrder", "acme/new-order"),
        ("revokeCert", "acme/revoke-cert"),
        ("keyChange", "acme/key-change"),
        ("renewalInfo", "acme/renewal-info"),
    ] {
        assert_eq!(directory[field], url(path));
    }
    assert!(response.headers.contains_key("replay-nonce"));
    assert_eq!(
        response.headers[header::LINK],
        format!("<{BASE}/directory>;rel=\"index\"")
    );
    assert_eq!(
        directory_url(&BASE.parse().unwrap()).as_str(),
        format!("{BASE}/directory")
    );

    let get_nonce = h
        .send(Request::get("/acme/new-nonce").body(Body::empty()).unwrap())
        .await;
    assert_eq!(get_nonce.status, StatusCode::NO_CONTENT);
    let problem = h.post_raw("/acme/new-account", "{").await;
    assert!(problem.headers.contains_key("replay-nonce"));
    assert!(problem.headers.contains_key(header::LINK));
}

#[tokio::test]
async fn router_under_a_path_prefix_uses_it_in_urls() {
    let h = Harness::new(unused_target());
    let router = h.ca.router("https://127.0.0.1:8444/ca/".parse().unwrap());
    let response = router
        .oneshot(Request::get("/ca/directory").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let directory: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        directory["newNonce"],
        "https://127.0.0.1:8444/ca/acme/new-nonce"
    );
    assert_eq!(
        directory_url(&"https://127.0.0.1:8444/ca".parse().unwrap()).as_str(),
        "https://127.0.0.1:8444/ca/directory"
    );
}

#[tokio::test]
async fn malformed_jws_is_rejected() {
    let h = Harness::new(unused_target());
    h.post_raw("/acme/new-account", "not json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    h.post_raw(
        "/acme/new-account",
        json!({"protected": "!!!", "payload": "", "signature": "AA"}).to_string(),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    h.post_raw(
        "/acme/new-account",
        json!({"protected": b64("{}"), "payload": ""}).to_string(),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    let key = TestKey::es256();
    let no_url = json!({"alg": "ES256", "nonce": h.nonce().await, "jwk": key.jwk()});
    h.post_raw(
        "/acme/new-account",
        key.jws(&no_url, Some(&json!({}))).to_string(),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
}

#[tokio::test]
async fn transport_errors_are_problem_documents() {
    let h = Harness::new(unused_target());
    let wrong_type = Request::post("/acme/new-account")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    h.send(wrong_type)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "malformed");
    h.post_raw("/acme/new-account", vec![b' '; 65 * 1024])
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "malformed");
    h.send(Request::get("/acme/new-order").body(Body::empty()).unwrap())
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "malformed");
    h.send(Request::get("/nowhere").body(Body::empty()).unwrap())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "malformed");
}

#[tokio::test]
async fn nonces_are_single_use_and_must_be_ours() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let nonce = h.nonce().await;
    let protected =
        json!({"alg": "ES256", "nonce": nonce, "url": url("acme/new-account"), "jwk": key.jwk()});
    let body = key.jws(&protected, Some(&json!({}))).to_string();
    assert_eq!(
        h.post_raw("/acme/new-account", body.clone()).await.status,
        StatusCode::CREATED
    );
    h.post_raw("/acme/new-account", body)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "badNonce");

    let made_up = json!({"alg": "ES256", "nonce": "bm9wZQ", "url": url("acme/new-account"), "jwk": key.jwk()});
    h.post_raw(
        "/acme/new-account",
        key.jws(&made_up, Some(&json!({}))).to_string(),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "badNonce");
}

#[tokio::test]
async fn url_header_must_match_the_request() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let protected = json!({"alg": "ES256", "nonce": h.nonce().await, "url": url("acme/new-order"), "jwk": key.jwk()});
    h.post_raw(
        "/acme/new-account",
        key.jws(&protected, Some(&json!({}))).to_string(),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn unknown_kid_is_account_does_not_exist() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let order = json!({"identifiers": [{"type": "dns", "value": "a.test"}]});
    h.signed(
        &key,
        Some(&url("acme/acct/nobody")),
        "acme/new-order",
        Some(&order),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "accountDoesNotExist");
    h.signed(
        &key,
        None,
        "acme/new-account",
        Some(&json!({"onlyReturnExisting": true})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "accountDoesNotExist");
}

#[tokio::test]
async fn jwk_and_kid_only_where_allowed() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let order = json!({"identifiers": [{"type": "dns", "value": "a.test"}]});
    h.signed(&key, None, "acme/new-order", Some(&order))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    h.signed(&key, Some(&kid), "acme/new-account", Some(&json!({})))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    let both = json!({"alg": "ES256", "nonce": h.nonce().await, "url": url("acme/new-order"), "jwk": key.jwk(), "kid": kid});
    h.post_raw("/acme/new-order", key.jws(&both, Some(&order)).to_string())
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed");
}

#[tokio::test]
async fn unsupported_alg_lists_the_supported_ones() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let protected = json!({"alg": "HS256", "nonce": h.nonce().await, "url": url("acme/new-account"), "jwk": key.jwk()});
    let response = h
        .post_raw(
            "/acme/new-account",
            key.jws(&protected, Some(&json!({}))).to_string(),
        )
        .await;
    response.assert_problem(StatusCode::BAD_REQUEST, "badSignatureAlgorithm");
    assert_eq!(
        response.json()["algorithms"],
        json!(["ES256", "ES384", "RS256", "EdDSA"])
    );
}

#[tokio::test]
async fn bad_signature_is_rejected() {
    let h = Harness::new(unused_target());
    let (key, other) = (TestKey::es256(), TestKey::es256());
    let protected = json!({"alg": "ES256", "nonce": h.nonce().await, "url": url("acme/new-account"), "jwk": key.jwk()});
    h.post_raw(
        "/acme/new-account",
        other.jws(&protected, Some(&json!({}))).to_string(),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    assert!(h.ca.lock().accounts.is_empty());
}

#[tokio::test]
async fn accounts_are_found_by_key_updated_and_deactivated() {
    let h = Harness::new(unused_target());
    let key = TestKey::ed25519();
    let kid = h.account(&key).await;
    let again = h
        .signed(&key, None, "acme/new-account", Some(&json!({})))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.location(), kid);

    let path = kid.strip_prefix(&format!("{BASE}/")).unwrap();
    let other = TestKey::es256();
    h.signed(
        &other,
        None,
        "acme/new-account",
        Some(&json!({"contact": ["tel:+1"]})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "unsupportedContact");
    h.signed(
        &other,
        None,
        "acme/new-account",
        Some(&json!({"contact": ["mailto:a@b.test,c@d.test"]})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "invalidContact");

    let updated = h
        .signed(
            &key,
            Some(&kid),
            path,
            Some(&json!({"contact": ["mailto:new@example.test"]})),
        )
        .await;
    assert_eq!(
        updated.json()["contact"],
        json!(["mailto:new@example.test"])
    );
    let deactivated = h
        .signed(
            &key,
            Some(&kid),
            path,
            Some(&json!({"status": "deactivated"})),
        )
        .await;
    assert_eq!(deactivated.json()["status"], "deactivated");
    h.signed(&key, Some(&kid), path, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn key_change_moves_the_account_to_the_new_key() {
    let h = Harness::new(unused_target());
    let (old, new) = (TestKey::es256(), TestKey::es256());
    let kid = h.account(&old).await;
    let inner_header = json!({"alg": new.alg(), "jwk": new.jwk(), "url": url("acme/key-change")});
    let inner = new.jws(
        &inner_header,
        Some(&json!({"account": kid, "oldKey": old.jwk()})),
    );
    let response = h
        .signed(&old, Some(&kid), "acme/key-change", Some(&inner))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());

    let found = h
        .signed(
            &new,
            None,
            "acme/new-account",
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.location(), kid);
    h.signed(
        &old,
        None,
        "acme/new-account",
        Some(&json!({"onlyReturnExisting": true})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "accountDoesNotExist");
    h.signed(
        &old,
        Some(&kid),
        "acme/new-order",
        Some(&json!({"identifiers": [{"type": "dns", "value": "a.test"}]})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    h.order(&new, &kid, &["a.test"]).await;

    // A key that already has an account cannot be taken over.
    let third = TestKey::es256();
    let other_kid = h.account(&third).await;
    let inner_header =
        json!({"alg": third.alg(), "jwk": third.jwk(), "url": url("acme/key-change")});
    let inner = third.jws(
        &inner_header,
        Some(&json!({"account": kid, "oldKey": new.jwk()})),
    );
    let conflict = h
        .signed(&new, Some(&kid), "acme/key-change", Some(&inner))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.location(), other_kid);
}

#[tokio::test]
async fn identifiers_are_checked() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    for bad in [
        "*.a.test",
        "127.0.0.1",
        "a.test.",
        "-a.test",
        "a_b.test",
        "a..test",
    ] {
        let order = json!({"identifiers": [{"type": "dns", "value": bad}]});
        h.signed(&key, Some(&kid), "acme/new-order", Some(&order))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "rejectedIdentifier");
    }
    let ip = json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}]});
    h.signed(&key, Some(&kid), "acme/new-order", Some(&ip))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "unsupportedIdentifier");

    let (_, order) = h.order(&key, &kid, &["B.test", "a.test", "b.test"]).await;
    assert_eq!(
        order["identifiers"],
        json!([{"type": "dns", "value": "a.test"}, {"type": "dns", "value": "b.test"}])
    );
    assert_eq!(order["status"], "pending");
    assert_eq!(order["expires"], "2026-03-01T12:15:00Z");
    let authz = h
        .fetch(&key, &kid, order["authorizations"][0].as_str().unwrap())
        .await
        .json();
    assert_eq!(authz["identifier"]["value"], "a.test");
    let kinds: Vec<&str> = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["http-01", "tls-alpn-01"]);
}

#[tokio::test]
async fn finalize_before_validation_is_order_not_ready() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (_, order) = h.order(&key, &kid, &["a.test"]).await;
    h.finalize(&key, &kid, &order, &["a.test"])
        .await
        .assert_problem(StatusCode::FORBIDDEN, "orderNotReady");
}

#[tokio::test]
async fn csr_must_name_exactly_the_order() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (_, order) = h.order(&key, &kid, &["a.test"]).await;
    h.authorize(&order);
    let response = h
        .finalize(&key, &kid, &order, &["a.test", "evil.test"])
        .await;
    response.assert_problem(StatusCode::BAD_REQUEST, "badCSR");
    assert!(
        response.json()["detail"]
            .as_str()
            .unwrap()
            .contains("evil.test")
    );
    let response = h.finalize(&key, &kid, &order, &["other.test"]).await;
    response.assert_problem(StatusCode::BAD_REQUEST, "badCSR");

    let path = order["finalize"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("{BASE}/"))
        .unwrap();
    h.signed(
        &key,
        Some(&kid),
        path,
        Some(&json!({"csr": b64(b"not a csr")})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "badCSR");
}

#[tokio::test]
async fn revocation_by_owner_or_key_and_only_once() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (leaf, _) = h.issued(&key, &kid, "a.test").await;
    let revoke = json!({"certificate": b64(&leaf), "reason": 4});

    let stranger = TestKey::es256();
    let stranger_kid = h.account(&stranger).await;
    h.signed(
        &stranger,
        Some(&stranger_kid),
        "acme/revoke-cert",
        Some(&revoke),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    h.signed(
        &key,
        Some(&kid),
        "acme/revoke-cert",
        Some(&json!({"certificate": b64(&leaf), "reason": 7})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "badRevocationReason");

    let ok = h
        .signed(&key, Some(&kid), "acme/revoke-cert", Some(&revoke))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json());
    h.signed(&key, Some(&kid), "acme/revoke-cert", Some(&revoke))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "alreadyRevoked");

    h.signed(
        &key,
        Some(&kid),
        "acme/revoke-cert",
        Some(&json!({"certificate": b64(b"junk")})),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "malformed");
}

/// The current intermediate's key identifier: the AKI of the leaves it signs.
fn intermediate_key_id(ca: &LocalCa) -> Vec<u8> {
    let der = CertificateDer::from_pem_slice(ca.authority.intermediate_pem().as_bytes()).unwrap();
    let (_, x509) = X509Certificate::from_der(&der).unwrap();
    x509.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn renewal_info_suggests_two_thirds_to_three_quarters() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (leaf, _) = h.issued(&key, &kid, "a.test").await;
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    let aki = match cert
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::AuthorityKeyIdentifier(aki) => {
            aki.key_identifier.clone().unwrap().0.to_vec()
        }
        _ => panic!("no AKI"),
    };
    let path = format!("/acme/renewal-info/{}.{}", b64(aki), b64(cert.raw_serial()));
    let response = h
        .send(Request::get(&path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers[header::RETRY_AFTER], "21600");
    let window = &response.json()["suggestedWindow"];
    assert_eq!(window["start"], "2026-03-03T11:59:00Z");
    assert_eq!(window["end"], "2026-03-03T17:59:00Z");

    h.signed(
        &key,
        Some(&kid),
        "acme/revoke-cert",
        Some(&json!({"certificate": b64(&leaf)})),
    )
    .await;
    let revoked = h
        .send(Request::get(&path).body(Body::empty()).unwrap())
        .await
        .json();
    let end: DateTime<Utc> = revoked["suggestedWindow"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(end < h.clock.now());

    // A serial this CA does not know under its current intermediate.
    let unknown = format!(
        "/acme/renewal-info/{}.AAAA",
        b64(intermediate_key_id(&h.ca))
    );
    h.send(Request::get(&unknown).body(Body::empty()).unwrap())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "malformed");
    h.send(
        Request::get("/acme/renewal-info/no-dot")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
}

async fn wait_for_authz(h: &Harness, key: &TestKey, kid: &str, authz_url: &str) -> Value {
    for _ in 0..500 {
        let authz = h.fetch(key, kid, authz_url).await.json();
        if authz["status"] != "pending" {
            return authz;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    panic!("validation did not finish");
}

fn challenge<'a>(authz: &'a Value, kind: &str) -> &'a Value {
    authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap()
}

#[tokio::test]
async fn http01_flow_issues_a_chain_to_the_root() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = ValidationTarget {
        http: listener.local_addr().unwrap(),
        tls: "127.0.0.1:9".parse().unwrap(),
    };
    let h = Harness::new(target);
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (order_url, order) = h.order(&key, &kid, &["blog.example.test"]).await;
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let authz = h.fetch(&key, &kid, authz_url).await.json();
    let http = challenge(&authz, "http-01");
    let token = http["token"].as_str().unwrap().to_owned();
    let key_authorization = format!("{token}.{}", key.thumbprint());

    let served = key_authorization.clone();
    let app = Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(move |headers: HeaderMap| async move {
            assert_eq!(headers[header::HOST], "blog.example.test");
            served
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let chall_path = http["url"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("{BASE}/"))
        .unwrap();
    let started = h
        .signed(&key, Some(&kid), chall_path, Some(&json!({})))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    assert_eq!(started.json()["status"], "processing");
    assert!(
        started
            .headers
            .get_all(header::LINK)
            .iter()
            .any(|l| l.to_str().unwrap().contains("rel=\"up\""))
    );

    let authz = wait_for_authz(&h, &key, &kid, authz_url).await;
    assert_eq!(authz["status"], "valid", "{authz}");
    assert_eq!(challenge(&authz, "http-01")["status"], "valid");
    let order = h.fetch(&key, &kid, &order_url).await.json();
    assert_eq!(order["status"], "ready");

    let finalized = h.finalize(&key, &kid, &order, &["blog.example.test"]).await;
    assert_eq!(finalized.status, StatusCode::OK, "{}", finalized.json());
    assert_eq!(finalized.json()["status"], "valid");
    let chain = h
        .fetch(
            &key,
            &kid,
            finalized.json()["certificate"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        chain.headers[header::CONTENT_TYPE],
        "application/pem-certificate-chain"
    );
    let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&chain.body)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(certs.len(), 2);
    let root = CertificateDer::from_pem_slice(h.ca.root_pem().as_bytes()).unwrap();
    let (_, root) = X509Certificate::from_der(&root).unwrap();
    let (_, intermediate) = X509Certificate::from_der(&certs[1]).unwrap();
    let (_, leaf) = X509Certificate::from_der(&certs[0]).unwrap();
    intermediate
        .verify_signature(Some(root.public_key()))
        .unwrap();
    leaf.verify_signature(Some(intermediate.public_key()))
        .unwrap();
    assert!(root.is_ca() && intermediate.is_ca() && !leaf.is_ca());

    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::DNSName("blog.example.test")]
    );
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    assert_eq!(not_before, (start() - Duration::minutes(1)).timestamp());
    assert_eq!(not_after - not_before, LIFETIME.as_secs() as i64);
    assert!(
        leaf.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    let serial = leaf.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0);
}

#[tokio::test]
async fn http01_wrong_answer_invalidates_the_order() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = ValidationTarget {
        http: listener.local_addr().unwrap(),
        tls: "127.0.0.1:9".parse().unwrap(),
    };
    let app = Router::new().fallback(|| async { "wrong" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let h = Harness::new(target);
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (order_url, order) = h.order(&key, &kid, &["a.test"]).await;
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let authz = h.fetch(&key, &kid, authz_url).await.json();
    let path = challenge(&authz, "http-01")["url"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("{BASE}/"))
        .unwrap()
        .to_owned();
    h.signed(&key, Some(&kid), &path, Some(&json!({}))).await;
    let authz = wait_for_authz(&h, &key, &kid, authz_url).await;
    assert_eq!(authz["status"], "invalid");
    let error = &challenge(&authz, "http-01")["error"];
    assert_eq!(
        error["type"],
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let order = h.fetch(&key, &kid, &order_url).await.json();
    assert_eq!(order["status"], "invalid");
    assert_eq!(
        order["error"]["type"],
        "urn:ietf:params:acme:error:incorrectResponse"
    );
}

#[derive(Debug)]
struct Always(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Always {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn tls_alpn01_validation_checks_the_acme_identifier() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = ValidationTarget {
        http: "127.0.0.1:9".parse().unwrap(),
        tls: listener.local_addr().unwrap(),
    };
    let h = Harness::new(target);
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (order_url, order) = h.order(&key, &kid, &["tls.example.test"]).await;
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let authz = h.fetch(&key, &kid, authz_url).await.json();
    let tls = challenge(&authz, "tls-alpn-01");
    let key_authorization = format!("{}.{}", tls["token"].as_str().unwrap(), key.thumbprint());

    let mut params = CertificateParams::new(vec!["tls.example.test".to_owned()]).unwrap();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(&Sha256::digest(
        key_authorization.as_bytes(),
    ))];
    let cert_key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&cert_key).unwrap();
    // rustls refuses to load a certificate with an unknown critical extension
    // through `with_single_cert`, so the test serves it from a resolver.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(
            cert_key.serialize_der().into(),
        ))
        .unwrap();
    let certified = Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(certified)));
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = acceptor.accept(tcp).await.unwrap();
        let sni = stream.get_ref().1.server_name().map(str::to_owned);
        assert_eq!(sni.as_deref(), Some("tls.example.test"));
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
    });

    let path = tls["url"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("{BASE}/"))
        .unwrap()
        .to_owned();
    h.signed(&key, Some(&kid), &path, Some(&json!({}))).await;
    let authz = wait_for_authz(&h, &key, &kid, authz_url).await;
    assert_eq!(authz["status"], "valid", "{authz}");
    assert_eq!(challenge(&authz, "tls-alpn-01")["status"], "valid");
    assert_eq!(
        h.fetch(&key, &kid, &order_url).await.json()["status"],
        "ready"
    );
}

#[test]
fn tls_alpn01_certificate_without_the_right_digest_is_incorrect() {
    let mut params = CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(&[0u8; 32])];
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let problem = super::validate::check_certificate(&der, "a.test", "token.thumb").unwrap_err();
    assert_eq!(
        problem.kind.urn(),
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let problem = super::validate::check_certificate(&der, "b.test", "token.thumb").unwrap_err();
    assert!(problem.detail.contains("b.test"));
}

#[test]
fn open_twice_keeps_the_root_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |clock| LocalCaSettings {
        dir: dir.path().join("local-ca"),
        domains: Vec::new(),
        leaf_lifetime: LIFETIME,
        validation: unused_target(),
        clock,
    };
    let first = LocalCa::open(settings(ManualClock::new(start()))).unwrap();
    let second = LocalCa::open(settings(ManualClock::new(start() + Duration::days(1)))).unwrap();
    assert_eq!(first.root_pem(), second.root_pem());
    assert_eq!(
        first.authority.intermediate_pem(),
        second.authority.intermediate_pem()
    );
    assert_eq!(second.root_pem_path(), dir.path().join("local-ca/root.pem"));
    assert_eq!(
        std::fs::read_to_string(second.root_pem_path()).unwrap(),
        second.root_pem()
    );
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join("local-ca").join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("root.key"), 0o600);
    assert_eq!(mode("intermediate.key"), 0o600);

    // A root near its end is replaced, and its intermediate with it.
    let later = LocalCa::open(settings(ManualClock::new(start() + Duration::days(320)))).unwrap();
    assert_ne!(later.root_pem(), first.root_pem());
    assert_ne!(
        later.authority.intermediate_pem(),
        first.authority.intermediate_pem()
    );
}

#[test]
fn corrupt_root_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    let settings = || LocalCaSettings {
        dir: dir.path().to_owned(),
        domains: Vec::new(),
        leaf_lifetime: LIFETIME,
        validation: unused_target(),
        clock: ManualClock::new(start()),
    };
    drop(LocalCa::open(settings()).unwrap());
    std::fs::write(dir.path().join("root.pem"), "garbage").unwrap();
    let error = LocalCa::open(settings()).err().unwrap().to_string();
    assert!(
        error.contains("root.pem") && error.contains("delete"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("root.pem")).unwrap(),
        "garbage"
    );

    std::fs::remove_file(dir.path().join("root.pem")).unwrap();
    let error = LocalCa::open(settings()).err().unwrap().to_string();
    assert!(
        error.contains("root.key") && error.contains("root.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn server_config_is_trusted_through_root_pem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open(LocalCaSettings {
        dir: dir.path().to_owned(),
        domains: Vec::new(),
        leaf_lifetime: LIFETIME,
        validation: unused_target(),
        clock: crate::clock::system(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
    tokio::spawn(async move {
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    for name in ["127.0.0.1", "localhost"] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
        let stream = connector.connect(server_name, tcp).await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    }
    assert_eq!(
        ca.server_config().alpn_protocols,
        vec![b"http/1.1".to_vec()]
    );
}

/// Orders `count` names under `prefix`, as from the current peer; the response.
async fn order_many(h: &Harness, key: &TestKey, kid: &str, prefix: &str, count: usize) -> Response {
    let identifiers: Vec<Value> = (0..count)
        .map(|i| json!({"type": "dns", "value": format!("{prefix}-{i}.test")}))
        .collect();
    h.signed(
        key,
        Some(kid),
        "acme/new-order",
        Some(&json!({ "identifiers": identifiers })),
    )
    .await
}

fn retry_after(response: &Response) -> u64 {
    response.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn accounts_beyond_the_total_are_refused_until_idle_ones_are_forgotten() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    {
        // The other accounts, made directly: thousands of signed requests would be slow.
        let jwk = Jwk::from_json(&key.jwk()).unwrap();
        let mut state = h.ca.lock();
        for i in 0..state::MAX_ACCOUNTS - 1 {
            let account = Account {
                key: jwk.clone(),
                status: Status::Valid,
                contact: Vec::new(),
                terms_agreed: true,
                orders: Vec::new(),
                last_used: start(),
            };
            state.accounts.insert(format!("filler{i}"), account);
        }
    }
    h.account(&TestKey::es256()).await;
    h.clock.advance(Duration::minutes(20));
    let refused = h
        .signed(
            &TestKey::es256(),
            None,
            "acme/new-account",
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rateLimited");
    assert_eq!(retry_after(&refused), 10 * 60);

    // Half an hour after their last use, the unused accounts are forgotten.
    h.clock.advance(Duration::minutes(10));
    h.account(&TestKey::es256()).await;
    assert!(h.ca.lock().accounts.len() < 10);
}

#[tokio::test]
async fn an_abandoned_order_and_an_unused_nonce_are_forgotten_within_minutes() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (order_url, order) = h.order(&key, &kid, &["a.test", "b.test"]).await;
    let nonce = h.nonce().await;
    assert_eq!(h.fetch(&key, &kid, &order_url).await.status, StatusCode::OK);

    h.clock.advance(Duration::minutes(16));
    let protected =
        json!({"alg": "ES256", "nonce": nonce, "url": url("acme/new-order"), "kid": kid});
    let stale = key.jws(&protected, Some(&json!({"identifiers": []})));
    h.post_raw("/acme/new-order", stale.to_string())
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "badNonce");
    h.fetch(&key, &kid, &order_url)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "malformed");
    h.fetch(&key, &kid, order["authorizations"][0].as_str().unwrap())
        .await
        .assert_problem(StatusCode::NOT_FOUND, "malformed");
    let state = h.ca.lock();
    assert!(state.orders.is_empty() && state.authorizations.is_empty());
}

#[tokio::test]
async fn orders_beyond_the_totals_are_refused_with_retry_after() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    // 100 orders of 100 names fill the authorizations; each client may make two.
    for i in 0..state::MAX_AUTHORIZATIONS / 100 {
        h.as_peer(&format!("10.0.0.{}", i / 2 + 1));
        let made = order_many(&h, &key, &kid, &format!("o{i}"), 100).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.json());
    }
    h.as_peer("10.0.1.1");
    h.clock.advance(Duration::minutes(5));
    let refused = order_many(&h, &key, &kid, "late", 1).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rateLimited");
    assert_eq!(retry_after(&refused), 10 * 60);

    h.clock.advance(Duration::minutes(10));
    let made = order_many(&h, &key, &kid, "late", 1).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json());
}

#[tokio::test]
async fn one_client_runs_out_of_budget_before_the_others() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    for i in 0..2 {
        let made = order_many(&h, &key, &kid, &format!("a{i}"), 100).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.json());
    }
    let refused = order_many(&h, &key, &kid, "a2", 100).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rateLimited");
    let wait = retry_after(&refused);
    assert!((1..=60).contains(&wait), "{wait}");

    h.as_peer("192.0.2.2");
    let other = order_many(&h, &key, &kid, "b", 100).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.json());

    h.as_peer("192.0.2.1");
    h.clock.advance(Duration::seconds(wait as i64));
    let made = order_many(&h, &key, &kid, "a2", 100).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json());
}

#[tokio::test]
async fn contacts_are_bounded() {
    let h = Harness::new(unused_target());
    let many: Vec<String> = (0..5)
        .map(|i| format!("mailto:a{i}@example.test"))
        .collect();
    let long = format!("mailto:{}@example.test", "a".repeat(400));
    for contact in [json!(many), json!([long])] {
        h.signed(
            &TestKey::es256(),
            None,
            "acme/new-account",
            Some(&json!({ "contact": contact })),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalidContact");
    }
}

/// The DNS names (and address ranges, as text) a CA certificate's constraints permit.
fn permitted_subtrees(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let constraints = cert.name_constraints().unwrap().expect("name constraints");
    assert!(constraints.critical);
    constraints
        .value
        .permitted_subtrees
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| match s.base {
            GeneralName::DNSName(name) => name.to_owned(),
            GeneralName::IPAddress(bytes) => format!("{bytes:?}"),
            ref other => panic!("unexpected subtree {other}"),
        })
        .collect()
}

fn verify(root: &[u8], intermediate: &[u8], leaf: &[u8], name: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec())).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let now = rustls::pki_types::UnixTime::since_unix_epoch(StdDuration::from_secs(
        start().timestamp() as u64,
    ));
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.to_vec()),
            &[CertificateDer::from(intermediate.to_vec())],
            &rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            now,
        )
        .map(|_| ())
}

#[tokio::test]
async fn the_root_is_trusted_only_for_the_names_local_mode_serves() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::open(LocalCaSettings {
        dir: dir.path().to_owned(),
        domains: vec!["blog.example.com".into(), "www.blog.example.com".into()],
        leaf_lifetime: LIFETIME,
        validation: unused_target(),
        clock: ManualClock::new(start()),
    })
    .unwrap();
    let root = CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap();
    let intermediate =
        CertificateDer::from_pem_slice(ca.authority.intermediate_pem().as_bytes()).unwrap();
    let loopback = [
        format!("{:?}", [127u8, 0, 0, 0, 255, 0, 0, 0]),
        format!("{:?}", [[0u8; 15].as_slice(), &[1], &[255; 16]].concat()),
    ];
    let expected = ["localhost", "test", "blog.example.com"]
        .map(String::from)
        .into_iter()
        .chain(loopback)
        .collect::<Vec<_>>();
    assert_eq!(permitted_subtrees(&root), expected);
    assert_eq!(permitted_subtrees(&intermediate), expected);
    let (_, parsed) = X509Certificate::from_der(&root).unwrap();
    let life = parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
    assert!(life <= 366 * 24 * 3600, "the root lives {life} s");

    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let not_before = start() - Duration::minutes(1);
        ca.authority
            .issue(
                &key,
                &[name.to_owned()],
                not_before,
                not_before + Duration::days(1),
            )
            .unwrap()
    };
    for name in [
        "localhost",
        "a.localhost",
        "blog.test",
        "blog.example.com",
        "www.blog.example.com",
    ] {
        verify(&root, &intermediate, &leaf(name), name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["example.com", "bank.example", "example.com.test.evil"] {
        let error = verify(&root, &intermediate, &leaf(name), name).unwrap_err();
        assert!(
            format!("{error:?}").contains("NameConstraintViolation"),
            "{name}: {error:?}"
        );
    }

    // The ACME front refuses such names before anything is issued.
    let router = ca.router(BASE.parse().unwrap());
    let h = Harness {
        ca,
        router,
        clock: ManualClock::new(start()),
        peer: Mutex::new("192.0.2.1".parse().unwrap()),
        _dir: dir,
    };
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let order = json!({"identifiers": [{"type": "dns", "value": "example.com"}]});
    let refused = h
        .signed(&key, Some(&kid), "acme/new-order", Some(&order))
        .await;
    refused.assert_problem(StatusCode::BAD_REQUEST, "rejectedIdentifier");
    let detail = refused.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("[domains]"), "{detail}");
    assert!(detail.contains("--domain example.com"), "{detail}");
}

#[test]
fn an_unconstrained_root_or_one_that_does_not_cover_the_domains_is_replaced_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let open = |domains: &[&str]| {
        LocalCa::open(LocalCaSettings {
            dir: dir.path().to_owned(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            leaf_lifetime: LIFETIME,
            validation: unused_target(),
            clock: ManualClock::new(start()),
        })
        .unwrap()
    };
    // A root as earlier versions made it: ten years, valid for every name.
    let old_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let old = params.self_signed(&old_key).unwrap();
    std::fs::write(dir.path().join("root.pem"), old.pem()).unwrap();
    std::fs::write(dir.path().join("root.key"), old_key.serialize_pem()).unwrap();

    let ca = open(&[]);
    assert_ne!(ca.root_pem(), old.pem());
    let key_now = std::fs::read_to_string(dir.path().join("root.key")).unwrap();
    assert_ne!(key_now, old_key.serialize_pem());
    let root = CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap();
    assert_eq!(permitted_subtrees(&root)[..2], ["localhost", "test"]);
    let first = ca.root_pem().to_owned();
    drop(ca);

    // Names below localhost and .test need nothing new; another domain does.
    assert_eq!(open(&["blog.localhost", "x.test"]).root_pem(), first);
    let wider = open(&["blog.example.com"]);
    assert_ne!(wider.root_pem(), first);
    let root = CertificateDer::from_pem_slice(wider.root_pem().as_bytes()).unwrap();
    assert!(permitted_subtrees(&root).contains(&"blog.example.com".to_owned()));
}

#[tokio::test]
async fn a_certificate_from_a_replaced_ca_is_to_be_renewed_at_once() {
    let old = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = old.account(&key).await;
    let (leaf, _) = old.issued(&key, &kid, "a.test").await;
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    let old_key_id = intermediate_key_id(&old.ca);
    let path = format!(
        "/acme/renewal-info/{}.{}",
        b64(&old_key_id),
        b64(cert.raw_serial())
    );

    // A new domain replaces the root and its intermediate; the leaf is unknown
    // to the restarted CA's memory but was signed by its previous intermediate.
    let new = old.restart(&["blog.example.com"]);
    assert_ne!(intermediate_key_id(&new.ca), old_key_id);
    assert_renew_now(&new, &path).await;
    // The next start keeps the root, and still knows the old intermediate.
    let again = new.restart(&["blog.example.com"]);
    assert_renew_now(&again, &path).await;
}

async fn assert_renew_now(h: &Harness, path: &str) {
    let response = h
        .send(Request::get(path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json());
    let end: DateTime<Utc> = response.json()["suggestedWindow"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(end < h.clock.now());
}

#[tokio::test]
async fn renewal_info_for_a_certificate_this_ca_never_issued_is_not_found() {
    let h = Harness::new(unused_target());
    // A key identifier of no intermediate this CA has had, as a garbage or
    // another CA's ID carries.
    for id in ["AAAA.AAAA", "3q2-7w.AQ"] {
        h.send(
            Request::get(format!("/acme/renewal-info/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "malformed");
    }
}

#[test]
fn a_damaged_list_of_retired_intermediates_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        LocalCa::open(LocalCaSettings {
            dir: dir.path().to_owned(),
            domains: Vec::new(),
            leaf_lifetime: LIFETIME,
            validation: unused_target(),
            clock: ManualClock::new(start()),
        })
    };
    let list = dir.path().join("retired-intermediates");
    std::fs::write(&list, "0a1b\nnot hex\n").unwrap();
    let error = open().err().unwrap().to_string();
    assert!(error.contains(&list.display().to_string()), "{error}");
    assert!(
        error.contains("line 2 is not a hex key identifier"),
        "{error}"
    );
    assert!(error.contains("delete it"), "{error}");

    std::fs::write(&list, "00".repeat(5000)).unwrap();
    let error = open().err().unwrap().to_string();
    assert!(error.contains("larger than 8192 bytes"), "{error}");
    std::fs::write(&list, b"0a\xff\n").unwrap();
    let error = open().err().unwrap().to_string();
    assert!(error.contains("it is not text"), "{error}");

    std::fs::remove_file(&list).unwrap();
    open().unwrap();
}
