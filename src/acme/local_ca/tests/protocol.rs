//! The directory, nonces, request authentication (JWS, url, kid or jwk) and
//! account resources, key changes included.

use super::*;

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
