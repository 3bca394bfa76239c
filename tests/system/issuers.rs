//! Several CAs (`[[tls.issuers]]`): an order goes down the list until a CA
//! issues, the status says which one did and why the first did not, and the
//! next renewal goes back to the first once it answers. Two real Pebbles,
//! each trusted through its own `roots` file; the first one stopped by PID.

use chrono::{DateTime, Utc};
use quire::clock::ManualClock;

use crate::support::*;

fn status(site: &SiteDir) -> serde_json::Value {
    let file = site.path("data/certs/localhost/status.json");
    serde_json::from_slice(&std::fs::read(file).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

/// The site for `localhost` ordering from `issuers` in order, its http
/// listener (where both Pebbles validate http-01) on `http`.
fn site_with_issuers(http: u16, issuers: &[&Pebble]) -> SiteDir {
    let site = SiteDir::example("");
    let tables: String = issuers
        .iter()
        .map(|p| {
            format!(
                "[[tls.issuers]]\ndirectory_url = \"{}\"\nroots = \"{}\"\n",
                p.directory, p.ca_file
            )
        })
        .collect();
    std::fs::write(
        site.config(),
        format!(
            "[domains]\nnames = [\"localhost\"]\n\n[listen]\nhttp = \"127.0.0.1:{http}\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\n{tables}"
        ),
    )
    .unwrap();
    site
}

// Multi-threaded: `quire cert renew` talks to this in-process server while
// the test waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_first_ca_hands_the_order_to_the_second_and_the_next_renewal_returns_to_it() {
    let http = free_port();
    let settings = || PebbleSettings {
        http_port: http,
        tls_port: free_port(),
        dns: None,
    };
    let mut first = Pebble::start(settings());
    let mut second = Pebble::start(settings());
    first.stop();
    let site = site_with_issuers(http, &[&first, &second]);
    let config = site.load_config();
    // Pebble dates its certificates by the real clock: the test's starts a
    // minute ahead, so that each is already valid when it arrives.
    let clock = ManualClock::new(Utc::now() + chrono::Duration::minutes(1));
    let server = quire::system::start(config, clock.clone()).await.unwrap();
    let mut installs = first_certificate(server.resolver.as_ref().unwrap()).await;
    eventually(
        "the status of the certificate from the second CA",
        || async { status(&site)["issued_by"] == second.directory.as_str() },
    )
    .await;
    let https = server.https_addr.unwrap();

    // Served under the second Pebble's root, not the first's.
    served_serial(https, "localhost", &second.issuing_root())
        .await
        .unwrap();
    let after_fallback = status(&site);
    assert_eq!(after_fallback["issued_by"], second.directory.as_str());
    assert_eq!(after_fallback["consecutive_failures"], 0);
    let passed_over = after_fallback["passed_over"].as_array().unwrap();
    assert_eq!(passed_over.len(), 1, "{after_fallback}");
    assert_eq!(passed_over[0]["directory"], first.directory.as_str());
    let why = passed_over[0]["error"].as_str().unwrap();
    assert!(why.contains("Connection refused"), "{why}");
    let (_, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("fell back")
            && l.contains(&first.directory)
            && l.contains("Connection refused")),
        "{out}"
    );

    // The first CA is back; nothing is ordered before the renewal is due,
    // and the renewal goes to the first CA again.
    first.resume();
    let renew_after: DateTime<Utc> = after_fallback["renew_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    clock.set(renew_after + chrono::Duration::minutes(1));
    installed(&mut installs, "the renewal from the first CA").await;
    let first_root = first.issuing_root();
    served_serial(https, "localhost", &first_root)
        .await
        .unwrap();
    eventually("the status names the first CA", || async {
        status(&site)["issued_by"] == first.directory.as_str()
    })
    .await;
    let renewed = status(&site);
    assert_eq!(renewed["passed_over"], serde_json::json!([]), "{renewed}");

    // With both down, a forced renewal fails saying what each CA did, and
    // the certificate from the first keeps serving.
    first.stop();
    second.stop();
    let (code, out, err) =
        tokio::task::block_in_place(|| site.run(&["cert", "renew", "--config", "quire.toml"]));
    assert_ne!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("no CA issued a certificate (127.0.0.1:"),
        "{said}"
    );
    assert_eq!(said.matches("Connection refused").count(), 2, "{said}");
    assert_eq!(status(&site)["consecutive_failures"], 1);
    assert!(served_serial(https, "localhost", &first_root).await.is_ok());
    server.stop().await;
}
