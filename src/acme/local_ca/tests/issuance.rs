//! Orders, their identifiers and CSRs, and the challenge validations run
//! against real listeners on loopback.

use super::*;

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

/// A new order for `a.test`: its URL, its authorization's URL and the path
/// of its http-01 challenge.
async fn http01_of_new_order(h: &Harness, key: &TestKey, kid: &str) -> (String, String, String) {
    let (order_url, order) = h.order(key, kid, &["a.test"]).await;
    let authz_url = order["authorizations"][0].as_str().unwrap().to_owned();
    let authz = h.fetch(key, kid, &authz_url).await.json();
    let path = challenge(&authz, "http-01")["url"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("{BASE}/"))
        .unwrap()
        .to_owned();
    (order_url, authz_url, path)
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
    // Validated before the answer: the client need not poll.
    assert_eq!(started.json()["status"], "valid", "{}", started.json());
    assert!(started.headers.get(header::RETRY_AFTER).is_none());
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
    let (order_url, authz_url, path) = http01_of_new_order(&h, &key, &kid).await;
    let authz_url = authz_url.as_str();
    let answer = h.signed(&key, Some(&kid), &path, Some(&json!({}))).await;
    assert_eq!(answer.json()["status"], "invalid", "{}", answer.json());
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

#[tokio::test]
async fn a_validation_still_running_is_answered_processing_with_a_retry_after() {
    // Accepts and never answers: the validation outlasts the POST's wait.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = ValidationTarget {
        http: listener.local_addr().unwrap(),
        tls: "127.0.0.1:9".parse().unwrap(),
    };
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let h = Harness::new(target);
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (_, _, path) = http01_of_new_order(&h, &key, &kid).await;
    let answer = h.signed(&key, Some(&kid), &path, Some(&json!({}))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "processing", "{}", answer.json());
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    assert!(answer.headers.contains_key("replay-nonce"));
    silent.abort();
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
    let problem =
        super::super::validate::check_certificate(&der, "a.test", "token.thumb").unwrap_err();
    assert_eq!(
        problem.kind.urn(),
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let problem =
        super::super::validate::check_certificate(&der, "b.test", "token.thumb").unwrap_err();
    assert!(problem.detail.contains("b.test"));
}
