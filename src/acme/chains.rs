//! Alternate chains (RFC 8555 section 7.4.2). A CA may offer the same
//! certificate under several chains (through a cross-signed root, say),
//! naming the others in `Link: <url>;rel="alternate"` headers of the
//! certificate download. With `[tls] preferred_chain`, the chain whose
//! topmost certificate was issued by a certificate of that common name is
//! served, as certbot and lego choose; without it, or when no chain
//! matches, the CA's default. The alternates are fetched by POST-as-GET,
//! signed here with the account's key, since the ACME client library has
//! no call for them.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use url::Url;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::http::AcmeHttp;

/// Most alternates fetched for one certificate.
const MAX_ALTERNATES: usize = 8;

/// The common name of the issuer of the topmost certificate of `chain_pem`.
pub fn top_issuer(chain_pem: &str) -> Option<String> {
    let top = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .filter_map(Result::ok)
        .last()?;
    let (_, cert) = X509Certificate::from_der(&top).ok()?;
    let name = cert
        .issuer()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(name)
}

/// Whether `chain_pem` is the one `preferred` names.
fn matches(chain_pem: &str, preferred: &str) -> bool {
    top_issuer(chain_pem).is_some_and(|issuer| issuer == preferred)
}

/// Signs POST-as-GET requests with the account's key.
pub struct PostAsGet<'a> {
    http: &'a AcmeHttp,
    key: EcdsaKeyPair,
    /// The account URL, the JWS `kid`.
    account: String,
    new_nonce: Url,
}

impl<'a> PostAsGet<'a> {
    /// From the account as stored (`serde_json` of instant-acme's
    /// credentials: `id` and a base64url PKCS#8 `key_pkcs8`) and the CA's
    /// directory.
    pub async fn new(
        http: &'a AcmeHttp,
        stored_account: &[u8],
        directory: &Url,
    ) -> anyhow::Result<PostAsGet<'a>> {
        let account: serde_json::Value =
            serde_json::from_slice(stored_account).context("reading the stored ACME account")?;
        let id = account["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the stored ACME account has no URL"))?;
        let pkcs8 = URL_SAFE_NO_PAD
            .decode(account["key_pkcs8"].as_str().unwrap_or_default())
            .context("reading the stored ACME account's key")?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| anyhow!("the stored ACME account's key is not a P-256 key: {e}"))?;
        let directory_json: serde_json::Value =
            serde_json::from_slice(&http.get_small(directory).await?)
                .context("reading the directory")?;
        let new_nonce = directory_json["newNonce"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| anyhow!("the CA's directory has no newNonce URL"))?;
        Ok(PostAsGet {
            http,
            key,
            account: id.to_string(),
            new_nonce,
        })
    }

    /// The body at `url`, fetched by a signed POST with an empty payload.
    pub async fn fetch(&self, url: &str) -> anyhow::Result<String> {
        let nonce = self.http.nonce(&self.new_nonce).await?;
        let protected = serde_json::json!({
            "alg": "ES256",
            "kid": self.account,
            "nonce": nonce,
            "url": url,
        });
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let signing_input = format!("{protected}.");
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow!("cannot sign the request"))?;
        let body = serde_json::json!({
            "protected": protected,
            "payload": "",
            "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        });
        let url = Url::parse(url).with_context(|| format!("the CA's alternate link {url}"))?;
        let bytes = self.http.post_jose(&url, body.to_string()).await?;
        String::from_utf8(bytes.to_vec()).context("the alternate chain is not text")
    }
}

/// The chain to serve: `default` unless `preferred` names another of the
/// CA's `alternates`, fetched with `fetch`.
pub async fn choose<F, Fut>(
    default: String,
    alternates: Vec<String>,
    preferred: Option<&str>,
    fetch: F,
) -> anyhow::Result<String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    let Some(preferred) = preferred else {
        return Ok(default);
    };
    if matches(&default, preferred) {
        return Ok(default);
    }
    if alternates.len() > MAX_ALTERNATES {
        bail!(
            "the CA offers {} alternate chains; quire looks at {MAX_ALTERNATES} at most",
            alternates.len()
        );
    }
    let mut offered = vec![top_issuer(&default).unwrap_or_else(|| "?".into())];
    for url in alternates {
        let chain = fetch(url.clone())
            .await
            .with_context(|| format!("fetching the alternate chain {url}"))?;
        if matches(&chain, preferred) {
            tracing::info!("serving the CA's alternate chain up to \"{preferred}\"");
            return Ok(chain);
        }
        offered.push(top_issuer(&chain).unwrap_or_else(|| "?".into()));
    }
    tracing::warn!(
        "no chain the CA offers goes up to \"{preferred}\" ([tls] preferred_chain); serving its default. It offers chains up to: {}",
        offered.join(", ")
    );
    Ok(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Ca = (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>);

    /// A CA certificate named `name`, self-signed or signed by `signer`.
    fn ca(name: &str, signer: Option<&Ca>) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = match signer {
            Some((_, issuer)) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert, rcgen::Issuer::new(params, key))
    }

    /// A leaf under an intermediate under a root named `root`: the chain
    /// as a CA sends it (leaf, intermediate).
    fn chain_up_to(root: &str) -> String {
        let root = ca(root, None);
        let intermediate = ca("Intermediate", Some(&root));
        let leaf = rcgen::CertificateParams::new(vec!["blog.test".to_string()])
            .unwrap()
            .signed_by(&rcgen::KeyPair::generate().unwrap(), &intermediate.1)
            .unwrap();
        format!("{}{}", leaf.pem(), intermediate.0.pem())
    }

    #[test]
    fn the_top_issuer_is_the_root_above_the_chain() {
        assert_eq!(
            top_issuer(&chain_up_to("Old Root")).as_deref(),
            Some("Old Root")
        );
        assert_eq!(top_issuer("not a certificate"), None);
    }

    #[tokio::test]
    async fn the_preferred_chain_is_served_when_offered() {
        let default = chain_up_to("New Root");
        let alternate = chain_up_to("Old Root");
        let served = choose(
            default.clone(),
            vec!["https://ca.test/cert/1/1".into()],
            Some("Old Root"),
            |_| {
                let alternate = alternate.clone();
                async move { Ok(alternate) }
            },
        )
        .await
        .unwrap();
        assert_eq!(served, alternate);

        // The default when it is the one preferred, or when none is.
        let fetch_none = |_| async { Err(anyhow!("not fetched")) };
        let kept = choose(
            default.clone(),
            vec!["x".into()],
            Some("New Root"),
            fetch_none,
        )
        .await
        .unwrap();
        assert_eq!(kept, default);
        let unasked = choose(default.clone(), vec!["x".into()], None, fetch_none)
            .await
            .unwrap();
        assert_eq!(unasked, default);
        let unmatched = choose(
            default.clone(),
            vec!["https://ca.test/cert/1/1".into()],
            Some("Elsewhere Root"),
            |_| {
                let alternate = alternate.clone();
                async move { Ok(alternate) }
            },
        )
        .await
        .unwrap();
        assert_eq!(unmatched, default);
    }
}
