//! A test certificate authority made at run time, and the manual-mode site
//! that serves what it issues.

use super::site::SiteDir;

/// A test certificate authority made at run time: root -> intermediate -> leaf.
pub struct TestCa {
    pub root_pem: String,
    intermediate: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate with its chain and key, as PEM.
pub struct Issued {
    /// Leaf, then intermediate.
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quire test root");
        let root =
            rcgen::CertifiedIssuer::self_signed(root_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quire test intermediate");
        let intermediate =
            rcgen::CertifiedIssuer::signed_by(params, rcgen::KeyPair::generate().unwrap(), &root)
                .unwrap();
        TestCa {
            root_pem: root.pem(),
            intermediate,
        }
    }

    /// An ECDSA P-256 leaf for `names`.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, rcgen::KeyPair::generate().unwrap(), None)
    }

    pub fn issue_with(
        &self,
        names: &[&str],
        key: rcgen::KeyPair,
        not_after: Option<(i32, u8, u8)>,
    ) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quire test leaf");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let leaf = params.signed_by(&key, &self.intermediate).unwrap();
        Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediate.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes a certificate pair where manual mode reads it (rename, as tools do).
pub fn install_pair(site: &SiteDir, issued: &Issued) {
    site.write("tls/privkey.pem", &issued.key_pem);
    site.write("tls/fullchain.pem", &issued.chain_pem);
}

/// The example site in manual mode, serving a fresh certificate from `ca`
/// for blog.test and www.blog.test. `extra` is appended to the config.
pub fn manual_site(ca: &TestCa, extra: &str) -> SiteDir {
    let site = SiteDir::example("");
    let config = format!(
        "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\n\n[domains]\nnames = [\"blog.test\", \"www.blog.test\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"manual\"\ncert_file = \"tls/fullchain.pem\"\nkey_file = \"tls/privkey.pem\"\n{extra}"
    );
    std::fs::write(site.config(), config).unwrap();
    install_pair(&site, &ca.issue(&["blog.test", "www.blog.test"]));
    site
}
