//! What the statistics may know about a reader, decided on the request path:
//! the visitor key (a keyed hash of the day's random salt, client address,
//! User-Agent and site; the address and User-Agent themselves are never kept),
//! the daily salts that make those keys unlinkable across days, bot detection
//! by User-Agent, and the referring host.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use aho_corasick::AhoCorasick;
use arc_swap::ArcSwap;
use siphasher::sip::SipHasher13;

use super::schema::Day;

/// A day's secret: 128 random bits, the SipHash key of that day's visitor keys.
pub type Salt = [u8; 16];

/// The salts of the days still being counted (usually today's alone, briefly
/// yesterday's too). Reading is lock-free; a missing day's salt is made once.
#[derive(Default)]
pub struct Salts {
    days: ArcSwap<Vec<(Day, Salt)>>,
    making: Mutex<()>,
}

impl Salts {
    /// Starts from the salts the store kept (days not yet over).
    pub fn from_stored(stored: Vec<(Day, Salt)>) -> Salts {
        Salts {
            days: ArcSwap::from_pointee(stored),
            making: Mutex::new(()),
        }
    }

    pub fn for_day(&self, day: Day) -> Salt {
        if let Some((_, salt)) = self.days.load().iter().find(|(d, _)| *d == day) {
            return *salt;
        }
        let _making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, salt)) = self.days.load().iter().find(|(d, _)| *d == day) {
            return *salt;
        }
        let salt = random_salt();
        let mut days = self.days.load().as_ref().clone();
        days.push((day, salt));
        self.days.store(Arc::new(days));
        salt
    }

    /// Takes on the salts a store kept, for the days that have none yet.
    pub fn adopt(&self, stored: Vec<(Day, Salt)>) {
        let _making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        let mut days = self.days.load().as_ref().clone();
        for (day, salt) in stored {
            if !days.iter().any(|(d, _)| *d == day) {
                days.push((day, salt));
            }
        }
        self.days.store(Arc::new(days));
    }

    /// Takes on salts decided elsewhere (by the database several nodes
    /// share), replacing any this node made for those days; returns the
    /// days whose salt changed, since their readers seen so far may be
    /// counted once more.
    pub fn settle(&self, decided: &[(Day, Salt)]) -> Vec<Day> {
        let _making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        let mut days = self.days.load().as_ref().clone();
        let mut changed = Vec::new();
        for (day, salt) in decided {
            match days.iter_mut().find(|(d, _)| d == day) {
                Some((_, held)) if held == salt => {}
                Some((_, held)) => {
                    *held = *salt;
                    changed.push(*day);
                }
                None => days.push((*day, *salt)),
            }
        }
        self.days.store(Arc::new(days));
        changed
    }

    /// The salts now held, to be kept in the store until their day is over.
    pub fn current(&self) -> Vec<(Day, Salt)> {
        self.days.load().as_ref().clone()
    }

    /// Forgets the salts of days before `day`: their visitor keys can no
    /// longer be recomputed by anyone.
    pub fn forget_before(&self, day: Day) {
        let _making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        let kept: Vec<(Day, Salt)> = self
            .days
            .load()
            .iter()
            .filter(|(d, _)| *d >= day)
            .copied()
            .collect();
        self.days.store(Arc::new(kept));
    }
}

/// A new day's salt.
pub fn random_salt() -> Salt {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .expect("the system random source works");
    salt
}

/// A fast, unkeyed 64-bit digest of a User-Agent: computed once per request,
/// it keys the bot cache and stands in for the User-Agent in the visitor key
/// (which is keyed by the salt, so the digest alone reveals nothing).
pub fn user_agent_digest(user_agent: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(user_agent);
    hasher.write_usize(user_agent.len());
    hasher.finish()
}

/// The visitor key: who this is today, and nothing more.
pub fn visitor_key(salt: &Salt, site: &str, client: IpAddr, user_agent_digest: u64) -> u64 {
    let mut hasher = SipHasher13::new_with_key(salt);
    match client {
        // An IPv4 client seen through a dual-stack socket is the same visitor.
        IpAddr::V4(v4) => hasher.write(&v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hasher.write(&v4.to_ipv6_mapped().octets()),
            None => hasher.write(&v6.octets()),
        },
    }
    hasher.write(site.as_bytes());
    hasher.write_u8(0xff);
    hasher.write_u64(user_agent_digest);
    hasher.finish()
}

/// User-Agent fragments of crawlers, link previewers, monitors and scripts.
/// Browsers never send these; an empty User-Agent counts as a bot too.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "archiver",
    "facebookexternalhit",
    "embedly",
    "preview",
    "headless",
    "lighthouse",
    "pingdom",
    "uptime",
    "monitor",
    "curl/",
    "wget/",
    "python",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "node-fetch",
    "axios/",
    "scrapy",
    "feedfetcher",
];

/// Recognises bots by their User-Agent.
pub struct BotRules {
    markers: AhoCorasick,
}

impl Default for BotRules {
    fn default() -> BotRules {
        BotRules {
            // A DFA: the fastest scan, at a few hundred KiB for these patterns.
            markers: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(BOT_MARKERS)
                .expect("the bot markers are valid patterns"),
        }
    }
}

impl BotRules {
    pub fn is_bot(&self, user_agent: &[u8]) -> bool {
        user_agent.len() < 8 || self.markers.is_match(user_agent)
    }

    /// [`BotRules::is_bot`], remembered per thread for the User-Agents seen
    /// last. A site's readers send few distinct User-Agents, so a fast hash
    /// and a table lookup usually replace the scan. (The markers are the same
    /// for every `BotRules`, so the table can be shared by all of them.)
    pub fn is_bot_cached(&self, user_agent: &[u8], digest: u64) -> bool {
        const SLOTS: usize = 512;
        thread_local! {
            static SEEN: std::cell::RefCell<Vec<(u64, bool)>> =
                std::cell::RefCell::new(vec![(0, false); SLOTS]);
        }
        // Zero marks an empty slot.
        let key = digest | 1;
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            let slot = &mut seen[(key >> 32) as usize % SLOTS];
            if slot.0 == key {
                return slot.1;
            }
            let bot = self.is_bot(user_agent);
            *slot = (key, bot);
            bot
        })
    }
}

/// The host of a `Referer` header, lowercase, when it names another site.
/// Self-referrals (`own_hosts`) and anything that is not an http(s) URL give `None`.
pub fn referrer_host<'a>(referer: &'a str, own_hosts: &[String]) -> Option<&'a str> {
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    };
    let host = host.trim_end_matches('.');
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if !valid || own_hosts.iter().any(|own| own.eq_ignore_ascii_case(host)) {
        return None;
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &[u8] =
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

    #[test]
    fn a_visitor_key_is_stable_within_a_day_and_unlinkable_across_days() {
        let salts = Salts::default();
        let (monday, tuesday) = (Day(20_000), Day(20_001));
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let firefox = user_agent_digest(FIREFOX);
        let key = |day| visitor_key(&salts.for_day(day), "example.org", ip, firefox);
        assert_eq!(key(monday), key(monday));
        assert_ne!(key(monday), key(tuesday));
        let other_browser = visitor_key(
            &salts.for_day(monday),
            "example.org",
            ip,
            user_agent_digest(b"Chrome"),
        );
        assert_ne!(key(monday), other_browser);
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(
            key(monday),
            visitor_key(&salts.for_day(monday), "example.org", mapped, firefox)
        );
    }

    #[test]
    fn forgotten_salts_are_gone_for_good() {
        let salts = Salts::default();
        let monday = salts.for_day(Day(20_000));
        salts.for_day(Day(20_001));
        salts.forget_before(Day(20_001));
        assert_eq!(salts.current().len(), 1);
        assert_ne!(salts.for_day(Day(20_000)), monday, "a new random salt");
        let kept = Salts::from_stored(vec![(Day(5), [7; 16])]);
        assert_eq!(kept.for_day(Day(5)), [7; 16]);
    }

    #[test]
    fn settled_salts_replace_the_ones_a_node_made_and_say_which() {
        let salts = Salts::default();
        let own = salts.for_day(Day(20_000));
        let decided = [(Day(20_000), [1; 16]), (Day(20_001), [2; 16])];
        assert_eq!(salts.settle(&decided), vec![Day(20_000)]);
        assert_ne!(own, [1; 16]);
        assert_eq!(salts.for_day(Day(20_000)), [1; 16]);
        assert_eq!(
            salts.for_day(Day(20_001)),
            [2; 16],
            "taken ahead of its day"
        );
        assert!(salts.settle(&decided).is_empty(), "already held");
    }

    #[test]
    fn bots_are_told_from_browsers() {
        let rules = BotRules::default();
        assert!(!rules.is_bot(FIREFOX));
        assert!(!rules.is_bot(b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"));
        let cached = |ua: &[u8]| rules.is_bot_cached(ua, user_agent_digest(ua));
        assert!(!cached(FIREFOX) && !cached(FIREFOX));
        assert!(cached(b"curl/8.5.0") && cached(b"curl/8.5.0"));
        for bot in [
            &b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"[..],
            b"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0)",
            b"curl/8.5.0",
            b"python-requests/2.31",
            b"Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0",
            b"facebookexternalhit/1.1",
            b"",
            b"-",
        ] {
            assert!(rules.is_bot(bot), "{}", String::from_utf8_lossy(bot));
        }
    }

    #[test]
    fn referrers_are_other_sites_hosts() {
        let own = vec!["blog.example.com".to_string()];
        assert_eq!(
            referrer_host("https://news.ycombinator.com/item?id=1", &own),
            Some("news.ycombinator.com")
        );
        assert_eq!(
            referrer_host("http://a.example:8080", &own),
            Some("a.example")
        );
        assert_eq!(
            referrer_host("https://user@b.example/x", &own),
            Some("b.example")
        );
        assert_eq!(referrer_host("https://BLOG.example.com/post/", &own), None);
        assert_eq!(referrer_host("android-app://com.x", &own), None);
        assert_eq!(referrer_host("https://<script>/", &own), None);
        assert_eq!(referrer_host("https:///nohost", &own), None);
    }
}
