//! Issued certificates: revocation and renewal information, also for
//! certificates of a replaced intermediate or one never issued.

use super::*;

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
async fn renewal_info_suggests_half_of_a_short_life_for_a_twelfth() {
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
    // Three days from a minute before the start: opens after a day and a
    // half, for six hours.
    assert_eq!(window["start"], "2026-03-02T23:59:00Z");
    assert_eq!(window["end"], "2026-03-03T05:59:00Z");

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
