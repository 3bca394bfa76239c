//! Conformance tests: the router driven in-process with JWS signed by test keys,
//! each error checked for its RFC 8555 type and status, and the challenge
//! validations run against real listeners on loopback. This file holds the
//! harness; the tests are grouped by concern in the files below.

mod authority;
mod certificates;
mod issuance;
mod limits;
mod profiles;
mod protocol;

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
use super::{Lifetimes, LocalCa, LocalCaSettings, ValidationTarget, directory_url};
use crate::clock::{Clock, ManualClock};
use crate::net::PeerAddr;

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
        Harness::with_lifetimes(target, Lifetimes::all(LIFETIME))
    }

    fn with_lifetimes(target: ValidationTarget, lifetimes: Lifetimes) -> Harness {
        Harness::open(tempfile::tempdir().unwrap(), &[], target, lifetimes)
    }

    /// What a restart with `domains` configured sees: the same folder, clock and
    /// validation target, and none of the ACME objects held in memory.
    fn restart(self, domains: &[&str]) -> Harness {
        let target = self.ca.settings.validation;
        let lifetimes = self.ca.settings.lifetimes;
        Harness::open(self._dir, domains, target, lifetimes)
    }

    fn open(
        dir: tempfile::TempDir,
        domains: &[&str],
        target: ValidationTarget,
        lifetimes: Lifetimes,
    ) -> Harness {
        let clock = ManualClock::new(start());
        let ca = LocalCa::open(LocalCaSettings {
            dir: dir.path().join("local-ca"),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            lifetimes,
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
        let response = self.order_with(key, kid, names, json!({})).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
        (response.location(), response.json())
    }

    /// A new-order request for `names` with the fields of `extra` besides.
    async fn order_with(&self, key: &TestKey, kid: &str, names: &[&str], extra: Value) -> Response {
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let mut payload = json!({ "identifiers": identifiers });
        for (field, value) in extra.as_object().unwrap() {
            payload[field] = value.clone();
        }
        self.signed(key, Some(kid), "acme/new-order", Some(&payload))
            .await
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
        self.issue(key, kid, &order, name).await
    }

    /// `order` (for `name`) authorized and finalized: the certificate's DER and URL.
    async fn issue(
        &self,
        key: &TestKey,
        kid: &str,
        order: &Value,
        name: &str,
    ) -> (Vec<u8>, String) {
        self.authorize(order);
        let finalized = self.finalize(key, kid, order, &[name]).await;
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
