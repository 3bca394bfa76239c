//! The CA itself: its root and intermediate on disk, their name constraints,
//! what a corrupt or unfit root leads to, and the CA endpoint's certificate.

use super::*;

#[test]
fn open_twice_keeps_the_root_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |clock| LocalCaSettings {
        dir: dir.path().join("local-ca"),
        domains: Vec::new(),
        lifetimes: Lifetimes::all(LIFETIME),
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
        lifetimes: Lifetimes::all(LIFETIME),
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
        lifetimes: Lifetimes::all(LIFETIME),
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
        lifetimes: Lifetimes::all(LIFETIME),
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
            lifetimes: Lifetimes::all(LIFETIME),
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

#[test]
fn a_damaged_list_of_retired_intermediates_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        LocalCa::open(LocalCaSettings {
            dir: dir.path().to_owned(),
            domains: Vec::new(),
            lifetimes: Lifetimes::all(LIFETIME),
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
