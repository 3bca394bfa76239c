//! Profiles (draft-ietf-acme-profiles): listed in the directory, each issuing
//! its own lifetime, an unknown one refused with the list; and orders that
//! name the certificate they replace (RFC 9773 §5).

use super::*;

fn lifetimes() -> Lifetimes {
    Lifetimes {
        classic: StdDuration::from_secs(90 * 86400),
        tlsserver: StdDuration::from_secs(45 * 86400),
        shortlived: StdDuration::from_secs(10 * 60),
    }
}

/// The ARI CertID of a leaf: its AKI and serial, base64url.
fn cert_id(leaf: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(leaf).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                Some(aki.key_identifier.clone().unwrap().0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    format!("{}.{}", b64(aki), b64(cert.raw_serial()))
}

fn lifetime_of(leaf: &[u8]) -> i64 {
    let (_, cert) = X509Certificate::from_der(leaf).unwrap();
    cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()
}

#[tokio::test]
async fn the_directory_lists_three_profiles_each_issuing_its_lifetime() {
    let h = Harness::with_lifetimes(unused_target(), lifetimes());
    let directory = h
        .send(Request::get("/directory").body(Body::empty()).unwrap())
        .await
        .json();
    let offered: Vec<&String> = directory["meta"]["profiles"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(offered, ["classic", "shortlived", "tlsserver"]);
    assert!(directory["meta"]["profiles"]["shortlived"].is_string());

    let key = TestKey::es256();
    let kid = h.account(&key).await;
    for (asked, shown, seconds) in [
        (Some("shortlived"), "shortlived", 600),
        (Some("tlsserver"), "tlsserver", 45 * 86400),
        (Some("classic"), "classic", 90 * 86400),
        (None, "classic", 90 * 86400),
    ] {
        let extra = asked.map_or(json!({}), |p| json!({ "profile": p }));
        let response = h.order_with(&key, &kid, &["a.test"], extra).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
        let order = response.json();
        assert_eq!(order["profile"], shown);
        let shown_later = h.fetch(&key, &kid, &response.location()).await.json();
        assert_eq!(shown_later["profile"], shown);
        let (leaf, _) = h.issue(&key, &kid, &order, "a.test").await;
        assert_eq!(lifetime_of(&leaf), seconds, "{shown}");
    }
}

#[tokio::test]
async fn an_unknown_profile_is_invalid_profile_with_the_list() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let refused = h
        .order_with(&key, &kid, &["a.test"], json!({"profile": "x"}))
        .await;
    refused.assert_problem(StatusCode::BAD_REQUEST, "invalidProfile");
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("classic, tlsserver, shortlived"),
        "{}",
        refused.json()
    );
    h.order_with(&key, &kid, &["a.test"], json!({"profile": 6}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    assert!(h.ca.lock().orders.is_empty(), "no order was made");
}

#[tokio::test]
async fn a_certificate_is_replaced_by_one_order_of_its_account() {
    let h = Harness::new(unused_target());
    let key = TestKey::es256();
    let kid = h.account(&key).await;
    let (leaf, _) = h.issued(&key, &kid, "a.test").await;
    let id = cert_id(&leaf);
    let replacing = json!({ "replaces": id });

    let first = h
        .order_with(&key, &kid, &["a.test"], replacing.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json());
    assert_eq!(first.json()["replaces"], id);
    // While that order may still succeed, no second one replaces the same.
    h.order_with(&key, &kid, &["a.test"], replacing.clone())
        .await
        .assert_problem(StatusCode::CONFLICT, "alreadyReplaced");

    // Once it has expired (invalid), another order may.
    h.clock
        .advance(Duration::seconds(state::ORDER_LIFETIME_SECS + 1));
    let second = h
        .order_with(&key, &kid, &["a.test"], replacing.clone())
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.json());
    h.issue(&key, &kid, &second.json(), "a.test").await;
    // Replaced for good, even once the order is forgotten.
    h.clock
        .advance(Duration::seconds(state::ORDER_LIFETIME_SECS + 1));
    h.ca.lock().prune(h.clock.now());
    h.order_with(&key, &kid, &["a.test"], replacing.clone())
        .await
        .assert_problem(StatusCode::CONFLICT, "alreadyReplaced");

    // Only a certificate of this CA, of this account, sharing a name.
    let (other_leaf, _) = h.issued(&key, &kid, "b.test").await;
    h.order_with(
        &key,
        &kid,
        &["a.test"],
        json!({ "replaces": cert_id(&other_leaf) }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    let stranger = TestKey::es256();
    let stranger_kid = h.account(&stranger).await;
    h.order_with(
        &stranger,
        &stranger_kid,
        &["b.test"],
        json!({ "replaces": cert_id(&other_leaf) }),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    for junk in [json!("AAAA.AAAA"), json!("no-dot"), json!(7)] {
        h.order_with(&key, &kid, &["b.test"], json!({ "replaces": junk }))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed");
    }
    let accepted = h
        .order_with(
            &key,
            &kid,
            &["b.test"],
            json!({ "replaces": cert_id(&other_leaf) }),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.json());
}
