//! The CAA records (RFC 8659) that let only the configured CA, and only this
//! server's ACME account at it (`accounturi`, RFC 8657), issue certificates
//! for the site's names: `quire cert status` prints them ready to paste into
//! the zone. The CA's CAA identity comes from its directory
//! (`meta.caaIdentities`, RFC 8555 section 7.1.1); well-known CAs are also
//! known by name, so the records print when the CA cannot be reached.

use std::fmt;

use serde_json::Value;
use url::Url;

use super::http::AcmeHttp;
use crate::names::SiteName;

/// One CAA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    pub name: String,
    /// `issue`, or `issuewild` for a wildcard name.
    pub tag: &'static str,
    pub value: String,
}

impl fmt::Display for CaaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. CAA 0 {} \"{}\"", self.name, self.tag, self.value)
    }
}

/// The records for `domains`: one per CA identity and name, naming the
/// account when it is known.
pub fn records(
    domains: &[SiteName],
    identities: &[String],
    account_uri: Option<&str>,
) -> Vec<CaaRecord> {
    let mut out = Vec::new();
    for domain in domains {
        let tag = match domain.is_wildcard() {
            true => "issuewild",
            false => "issue",
        };
        let name = domain.base().as_str();
        for identity in identities {
            let value = match account_uri {
                Some(account) => format!("{identity}; accounturi={account}"),
                None => identity.clone(),
            };
            out.push(CaaRecord {
                name: name.to_string(),
                tag,
                value,
            });
        }
    }
    out.dedup();
    out
}

/// The CAA identities of the CA at `directory`: from its directory, else
/// from the names of well-known CAs.
pub async fn identities(http: &AcmeHttp, directory: &Url) -> Vec<String> {
    match directory_identities(http, directory).await {
        Ok(found) if !found.is_empty() => found,
        outcome => {
            if let Err(e) = outcome {
                tracing::debug!("cannot read the CA's directory: {e:#}");
            }
            well_known(directory)
                .into_iter()
                .map(String::from)
                .collect()
        }
    }
}

async fn directory_identities(http: &AcmeHttp, directory: &Url) -> anyhow::Result<Vec<String>> {
    let body = http.get_small(directory).await?;
    let json: Value = serde_json::from_slice(&body)?;
    Ok(json["meta"]["caaIdentities"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .filter(|id| is_identity(id))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// A domain name as CAA's issuer identity, so what a CA's directory says
/// cannot break the printed record.
fn is_identity(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 253
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// The CAA identity of a well-known public CA, by its directory's host.
fn well_known(directory: &Url) -> Option<&'static str> {
    let host = directory.host_str()?;
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    [
        ("letsencrypt.org", "letsencrypt.org"),
        ("zerossl.com", "sectigo.com"),
        ("pki.goog", "pki.goog"),
        ("buypass.com", "buypass.com"),
        ("ssl.com", "ssl.com"),
    ]
    .into_iter()
    .find(|(domain, _)| under(domain))
    .map(|(_, identity)| identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_per_name_naming_the_account() {
        let domains: Vec<SiteName> = ["blog.example.com", "www.example.com", "*.example.com"]
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        let found = records(
            &domains,
            &["letsencrypt.org".to_string()],
            Some("https://acme-v02.api.letsencrypt.org/acme/acct/42"),
        );
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "blog.example.com. CAA 0 issue \"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42\"",
                "www.example.com. CAA 0 issue \"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42\"",
                "example.com. CAA 0 issuewild \"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42\"",
            ]
        );
        let without = records(&domains[..1], &["pki.goog".to_string()], None);
        assert_eq!(
            without[0].to_string(),
            "blog.example.com. CAA 0 issue \"pki.goog\""
        );
    }

    #[test]
    fn well_known_cas_are_known_by_their_directory() {
        let id = |u: &str| well_known(&Url::parse(u).unwrap());
        assert_eq!(
            id("https://acme-v02.api.letsencrypt.org/directory"),
            Some("letsencrypt.org")
        );
        assert_eq!(
            id("https://acme-staging-v02.api.letsencrypt.org/directory"),
            Some("letsencrypt.org")
        );
        assert_eq!(id("https://acme.zerossl.com/v2/DV90"), Some("sectigo.com"));
        assert_eq!(
            id("https://dv.acme-v02.api.pki.goog/directory"),
            Some("pki.goog")
        );
        assert_eq!(id("https://notletsencrypt.org/directory"), None);
        assert_eq!(id("https://127.0.0.1:14000/dir"), None);
    }

    /// A CA's directory on loopback, over plain HTTP.
    async fn directory_serving(json: &'static str) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app =
            axum::Router::new().route("/dir", axum::routing::get(move || async move { json }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Url::parse(&format!("http://{addr}/dir")).unwrap()
    }

    #[tokio::test]
    async fn the_identities_come_from_the_directory() {
        let http = AcmeHttp::new(
            &super::super::http::AcmeRoots::System,
            crate::metrics::Metrics::default(),
        )
        .unwrap();
        let directory = directory_serving(
            r#"{"newNonce":"x","meta":{"caaIdentities":["ca.example","bad\"value"]}}"#,
        )
        .await;
        assert_eq!(identities(&http, &directory).await, ["ca.example"]);
        let silent = directory_serving(r#"{"newNonce":"x","meta":{}}"#).await;
        assert!(identities(&http, &silent).await.is_empty());
    }

    #[test]
    fn only_domain_names_are_taken_as_identities() {
        assert!(is_identity("letsencrypt.org"));
        assert!(!is_identity("evil\"; issue \"x"));
        assert!(!is_identity(""));
    }
}
