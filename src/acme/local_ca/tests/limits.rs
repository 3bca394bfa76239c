//! Bounded memory: totals, forgetting what is abandoned, per-client budgets
//! and contact sizes.

use super::*;

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
