//! Flattened JWS (RFC 7515) as ACME uses it (RFC 8555 §6.2-6.4): parsing the
//! protected header, authenticating a request (nonce, url, key selection,
//! signature), the inner JWS of a key change, and the public keys (JWK) that
//! accounts and certificates are identified by, with their RFC 7638 thumbprints.
//! Every JWS signature the local CA checks is checked here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::problem::{Problem, ProblemType};

pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "EdDSA"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
    EdDsa,
}

/// A public key in one of the forms the signature algorithms accept.
impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    /// Uncompressed SEC1 points.
    P256(Vec<u8>),
    P384(Vec<u8>),
    /// Big-endian integers without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    key: KeyMaterial,
    thumbprint: String,
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(field: &str, text: &str) -> Result<Vec<u8>, Problem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Problem::malformed(format!("{field} is not unpadded base64url")))
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

impl Jwk {
    fn new(key: KeyMaterial) -> Jwk {
        // RFC 7638: the required members only, in lexicographic order, no whitespace.
        let canonical = match &key {
            KeyMaterial::P256(point) | KeyMaterial::P384(point) => {
                let crv = if matches!(key, KeyMaterial::P256(_)) {
                    "P-256"
                } else {
                    "P-384"
                };
                let half = (point.len() - 1) / 2;
                format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(&point[1..1 + half]),
                    b64(&point[1 + half..])
                )
            }
            KeyMaterial::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
            KeyMaterial::Ed25519(x) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
            }
        };
        let thumbprint = b64(Sha256::digest(canonical.as_bytes()));
        Jwk { key, thumbprint }
    }

    /// base64url(SHA-256) of the RFC 7638 form: the key's identity here and in key authorizations.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    pub fn from_json(value: &Value) -> Result<Jwk, Problem> {
        let field = |name: &str| -> Result<Vec<u8>, Problem> {
            let text = value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| Problem::malformed(format!("jwk lacks the \"{name}\" member")))?;
            unb64(&format!("jwk member \"{name}\""), text)
        };
        let bad_key = |detail: &str| {
            Problem::new(ProblemType::BadPublicKey, format!("unusable jwk: {detail}"))
        };
        let kty = value.get("kty").and_then(Value::as_str);
        let crv = value.get("crv").and_then(Value::as_str);
        let key = match (kty, crv) {
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let size = if crv == "P-256" { 32 } else { 48 };
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != size || y.len() != size {
                    return Err(bad_key("coordinates have the wrong length for the curve"));
                }
                let point = [&[4u8][..], &x, &y].concat();
                if size == 32 {
                    KeyMaterial::P256(point)
                } else {
                    KeyMaterial::P384(point)
                }
            }
            (Some("RSA"), _) => {
                let n = strip_zeros(&field("n")?);
                let e = strip_zeros(&field("e")?);
                if n.len() < 256 || n.len() > 1024 || e.is_empty() {
                    return Err(bad_key("RSA keys must have 2048 to 8192 bit moduli"));
                }
                KeyMaterial::Rsa { n, e }
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x = field("x")?;
                if x.len() != 32 {
                    return Err(bad_key("Ed25519 keys are 32 bytes"));
                }
                KeyMaterial::Ed25519(x)
            }
            _ => {
                return Err(bad_key(
                    "supported keys are EC P-256, EC P-384, RSA and OKP Ed25519",
                ));
            }
        };
        Ok(Jwk::new(key))
    }

    /// The JWK form of a certificate or CSR key, for the key types certificates may carry.
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Option<Jwk> {
        let key = match spki.parsed().ok()? {
            PublicKey::RSA(rsa) => KeyMaterial::Rsa {
                n: strip_zeros(rsa.modulus),
                e: strip_zeros(rsa.exponent),
            },
            PublicKey::EC(point) if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY => {
                let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
                let data = point.data().to_vec();
                match (data.first(), data.len()) {
                    (Some(4), 65) if curve == OID_EC_P256 => KeyMaterial::P256(data),
                    (Some(4), 97) if curve == OID_NIST_EC_P384 => KeyMaterial::P384(data),
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(Jwk::new(key))
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> Result<(), Problem> {
        let verified = match (&self.key, alg) {
            (KeyMaterial::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
            }
            (KeyMaterial::P384(point), Alg::Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
            }
            (KeyMaterial::Rsa { n, e }, Alg::Rs256) => RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                sig,
            ),
            (KeyMaterial::Ed25519(x), Alg::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig)
            }
            _ => {
                return Err(Problem::new(
                    ProblemType::BadSignatureAlgorithm,
                    format!("alg {} does not fit the key type", alg.name()),
                )
                .with_algorithms(ALGORITHMS));
            }
        };
        verified.map_err(|_| Problem::malformed("JWS signature does not verify"))
    }
}

/// How the request identifies its signer: a new key or an existing account.
#[derive(Debug)]
enum KeyRef {
    Jwk(Jwk),
    Kid(String),
}

#[derive(Debug)]
struct Header {
    alg: Alg,
    nonce: Option<String>,
    url: String,
    key: KeyRef,
}

/// A parsed, not yet verified, flattened JWS.
#[derive(Debug)]
struct Jws {
    header: Header,
    payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, Problem> {
    object
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed(format!("JWS lacks the string member \"{name}\"")))
}

impl Jws {
    fn parse(body: &[u8]) -> Result<Jws, Problem> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Problem::malformed(format!("body is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| Problem::malformed("body is not a JSON object"))?;
        if object.contains_key("signatures") {
            return Err(Problem::malformed(
                "use the flattened JWS JSON serialization, not the general one",
            ));
        }
        let protected_b64 = member(object, "protected")?;
        let payload_b64 = member(object, "payload")?;
        let signature = unb64("signature", member(object, "signature")?)?;
        let payload = unb64("payload", payload_b64)?;
        let protected: Value = serde_json::from_slice(&unb64("protected", protected_b64)?)
            .map_err(|_| Problem::malformed("protected header is not JSON"))?;
        let protected = protected
            .as_object()
            .ok_or_else(|| Problem::malformed("protected header is not a JSON object"))?;

        let alg = match protected.get("alg").and_then(Value::as_str) {
            Some("ES256") => Alg::Es256,
            Some("ES384") => Alg::Es384,
            Some("RS256") => Alg::Rs256,
            Some("EdDSA") => Alg::EdDsa,
            Some(other) => {
                return Err(Problem::new(
                    ProblemType::BadSignatureAlgorithm,
                    format!(
                        "alg {other:?} is not supported; use one of {}",
                        ALGORITHMS.join(", ")
                    ),
                )
                .with_algorithms(ALGORITHMS));
            }
            None => return Err(Problem::malformed("protected header lacks \"alg\"")),
        };
        let key = match (protected.get("jwk"), protected.get("kid")) {
            (Some(jwk), None) => KeyRef::Jwk(Jwk::from_json(jwk)?),
            (None, Some(Value::String(kid))) => KeyRef::Kid(kid.clone()),
            (None, Some(_)) => return Err(Problem::malformed("\"kid\" must be a string")),
            _ => {
                return Err(Problem::malformed(
                    "protected header must have exactly one of \"jwk\" and \"kid\"",
                ));
            }
        };
        let nonce = match protected.get("nonce") {
            None => None,
            Some(Value::String(nonce)) => Some(nonce.clone()),
            Some(_) => return Err(Problem::malformed("\"nonce\" must be a string")),
        };
        let url = member(protected, "url")
            .map_err(|_| Problem::malformed("protected header lacks the string \"url\""))?
            .to_owned();
        Ok(Jws {
            header: Header {
                alg,
                nonce,
                url,
                key,
            },
            payload,
            signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
            signature,
        })
    }

    fn verify(&self, key: &Jwk) -> Result<(), Problem> {
        key.verify(self.header.alg, &self.signing_input, &self.signature)
    }
}

/// Which key selection a resource accepts (RFC 8555 §6.2): "kid" for an
/// account's requests, "jwk" for a new account, either for revocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Kid,
    Jwk,
    Either,
}

/// Who signed a request: an existing account, or a bare key (new account, revocation by key).
pub enum Signer {
    Account { id: String, key: Jwk },
    Key(Jwk),
}

impl Signer {
    pub fn key(&self) -> &Jwk {
        match self {
            Signer::Account { key, .. } | Signer::Key(key) => key,
        }
    }

    pub fn account(&self) -> Result<&str, Problem> {
        match self {
            Signer::Account { id, .. } => Ok(id),
            Signer::Key(_) => Err(Problem::malformed(
                "this request must be signed with \"kid\"",
            )),
        }
    }
}

/// What authenticating a request needs from the server's memory, which the
/// caller holds: nonces are spent, and accounts are found by their URL.
pub trait Accounts {
    /// True once for each nonce the server handed out and has not forgotten.
    fn take_nonce(&self, nonce: &str) -> bool;
    /// The id and key of the valid account at `kid`, marking it used.
    fn account(&self, kid: &str) -> Result<(String, Jwk), Problem>;
}

/// A request whose signature verified, with its payload.
pub struct Authenticated {
    pub payload: Vec<u8>,
    pub signer: Signer,
}

impl Authenticated {
    /// RFC 8555 §6.2-6.4, in this order: nonce, url, key selection, then the signature.
    pub fn new(
        body: &[u8],
        url: &str,
        expect: Expect,
        accounts: &impl Accounts,
    ) -> Result<Authenticated, Problem> {
        let jws = Jws::parse(body)?;
        let bad_nonce = |detail: &str| Problem::new(ProblemType::BadNonce, detail);
        let nonce = jws
            .header
            .nonce
            .as_deref()
            .ok_or_else(|| bad_nonce("protected header lacks \"nonce\""))?;
        if !accounts.take_nonce(nonce) {
            return Err(bad_nonce(
                "nonce was not issued by this server or was already used; get a fresh one",
            ));
        }
        if jws.header.url != url {
            return Err(Problem::unauthorized(format!(
                "\"url\" header is {:?} but the request was sent to {url:?}",
                jws.header.url
            )));
        }
        let signer = match (&jws.header.key, expect) {
            (KeyRef::Kid(kid), Expect::Kid | Expect::Either) => {
                let (id, key) = accounts.account(kid)?;
                Signer::Account { id, key }
            }
            (KeyRef::Jwk(jwk), Expect::Jwk | Expect::Either) => Signer::Key(jwk.clone()),
            (KeyRef::Kid(_), _) => {
                return Err(Problem::malformed(
                    "this request must be signed with \"jwk\", not \"kid\"",
                ));
            }
            (KeyRef::Jwk(_), _) => {
                return Err(Problem::malformed(
                    "this request must be signed with \"kid\" (the account URL), not \"jwk\"",
                ));
            }
        };
        jws.verify(signer.key())?;
        Ok(Authenticated {
            payload: jws.payload,
            signer,
        })
    }

    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }

    pub fn object(&self) -> Result<Map<String, Value>, Problem> {
        match serde_json::from_slice(&self.payload) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(_) => Err(Problem::malformed("payload is not a JSON object")),
            Err(e) => Err(Problem::malformed(format!("payload is not JSON: {e}"))),
        }
    }

    pub fn post_as_get(&self) -> Result<(), Problem> {
        if self.is_post_as_get() {
            Ok(())
        } else {
            Err(Problem::malformed(
                "this resource is read by POST-as-GET: send an empty payload",
            ))
        }
    }

    /// RFC 8555 §7.3.5: the payload is a JWS signed by the new key, as "jwk",
    /// for the same url as this request; the new key and the inner payload.
    pub fn key_change(&self, url: &str) -> Result<(Jwk, Value), Problem> {
        let inner = Jws::parse(&self.payload)?;
        let KeyRef::Jwk(new_key) = &inner.header.key else {
            return Err(Problem::malformed(
                "the inner JWS must carry the new key as \"jwk\"",
            ));
        };
        inner.verify(new_key)?;
        if inner.header.url != url {
            return Err(Problem::malformed(
                "the inner JWS must have the same \"url\" as the outer one",
            ));
        }
        let change: Value = serde_json::from_slice(&inner.payload)
            .map_err(|_| Problem::malformed("the inner payload is not JSON"))?;
        Ok((new_key.clone(), change))
    }
}
