//! The JSON each ACME resource shows (RFC 8555 §7.1.2-7.1.5), with its URLs.

use serde_json::{Value, json};

use super::super::orders::{Account, Authorization, Challenge, ChallengeKind, Order};
use super::http::{Api, rfc3339};

impl Api {
    pub(super) fn account_json(&self, id: &str, account: &Account) -> Value {
        json!({
            "status": account.status,
            "contact": account.contact,
            "termsOfServiceAgreed": account.terms_agreed,
            "orders": self.url(&format!("acme/acct/{id}/orders")),
        })
    }

    pub(super) fn order_json(&self, id: &str, order: &Order) -> Value {
        let mut value = json!({
            "status": order.status,
            "expires": rfc3339(order.expires),
            "identifiers": order.identifiers.iter()
                .map(|name| json!({"type": "dns", "value": name}))
                .collect::<Vec<_>>(),
            "authorizations": order.authorizations.iter()
                .map(|a| self.url(&format!("acme/authz/{a}")))
                .collect::<Vec<_>>(),
            "finalize": self.url(&format!("acme/order/{id}/finalize")),
            "profile": order.profile.name(),
        });
        if let Some(replaces) = &order.replaces {
            value["replaces"] = json!(replaces.cert_id);
        }
        if let Some(cert) = &order.certificate {
            value["certificate"] = json!(self.url(&format!("acme/cert/{cert}")));
        }
        if let Some(error) = &order.error {
            value["error"] = json!(error.document());
        }
        value
    }

    pub(super) fn challenge_json(&self, authz_id: &str, challenge: &Challenge) -> Value {
        let mut value = json!({
            "type": challenge.kind.name(),
            "url": self.challenge_url(authz_id, challenge.kind),
            "token": challenge.token,
            "status": challenge.status,
        });
        if let Some(validated) = challenge.validated {
            value["validated"] = json!(rfc3339(validated));
        }
        if let Some(error) = &challenge.error {
            value["error"] = json!(error.document());
        }
        value
    }

    pub(super) fn challenge_url(&self, authz_id: &str, kind: ChallengeKind) -> String {
        self.url(&format!("acme/chall/{authz_id}/{}", kind.name()))
    }

    pub(super) fn authorization_json(&self, id: &str, authz: &Authorization) -> Value {
        json!({
            "status": authz.status,
            "expires": rfc3339(authz.expires),
            "identifier": {"type": "dns", "value": authz.identifier},
            "challenges": authz.challenges.iter()
                .map(|c| self.challenge_json(id, c))
                .collect::<Vec<_>>(),
        })
    }
}
