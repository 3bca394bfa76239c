//! The certificate profiles the local CA offers (draft-ietf-acme-profiles):
//! `classic`, `tlsserver` and `shortlived`, as Let's Encrypt does, each with
//! its configured lifetime, and the renewal window (RFC 9773) it suggests
//! for a certificate of a given life, so every mode can exercise both.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::problem::{Problem, ProblemType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Classic,
    TlsServer,
    ShortLived,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Classic, Profile::TlsServer, Profile::ShortLived];

    /// What an order that names no profile gets.
    pub const DEFAULT: Profile = Profile::Classic;

    pub fn name(self) -> &'static str {
        match self {
            Profile::Classic => "classic",
            Profile::TlsServer => "tlsserver",
            Profile::ShortLived => "shortlived",
        }
    }

    /// The description the directory lists it with.
    pub fn description(self) -> &'static str {
        match self {
            Profile::Classic => "the default: server and client authentication, longest lifetime",
            Profile::TlsServer => "server authentication only, shorter lifetime",
            Profile::ShortLived => "server authentication only, lifetime of days (or less)",
        }
    }

    /// The profile an order's `profile` field asks for, or invalidProfile
    /// with the list.
    pub fn requested(name: &str) -> Result<Profile, Problem> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let offered: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
                Problem::new(
                    ProblemType::InvalidProfile,
                    format!(
                        "the local CA offers no profile {name:?}; use one of {}",
                        offered.join(", ")
                    ),
                )
            })
    }
}

/// How long the certificates of each profile live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub classic: Duration,
    pub tlsserver: Duration,
    pub shortlived: Duration,
}

impl Lifetimes {
    /// Every profile with the same lifetime.
    pub fn all(lifetime: Duration) -> Lifetimes {
        Lifetimes {
            classic: lifetime,
            tlsserver: lifetime,
            shortlived: lifetime,
        }
    }

    pub fn of(&self, profile: Profile) -> Duration {
        match profile {
            Profile::Classic => self.classic,
            Profile::TlsServer => self.tlsserver,
            Profile::ShortLived => self.shortlived,
        }
    }
}

/// The renewal window suggested for a certificate valid from `not_before` to
/// `not_after`: it opens when a third of the life is left (half, for lives
/// under 10 days, as Let's Encrypt advises for its 6-day certificates) and
/// lasts a twelfth of it (days 60 to 67.5 of 90; hours 80 to 93 of 160).
pub fn renewal_window(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let lifetime = not_after - not_before;
    let left = match lifetime < chrono::Duration::days(10) {
        true => lifetime / 2,
        false => lifetime / 3,
    };
    let start = not_after - left;
    (start, start + lifetime / 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_open_at_a_third_left_or_half_for_short_lives() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let (open, close) = renewal_window(start, start + chrono::Duration::days(90));
        assert_eq!(open, start + chrono::Duration::days(60));
        assert_eq!(close, start + chrono::Duration::hours(60 * 24 + 180));
        let (open, close) = renewal_window(start, start + chrono::Duration::hours(160));
        assert_eq!(open, start + chrono::Duration::hours(80));
        assert_eq!(close - open, chrono::Duration::minutes(800));
    }

    #[test]
    fn an_unknown_profile_is_refused_with_the_list() {
        assert_eq!(
            Profile::requested("shortlived").unwrap(),
            Profile::ShortLived
        );
        let problem = Profile::requested("x").unwrap_err();
        assert_eq!(problem.kind, ProblemType::InvalidProfile);
        assert!(
            problem.detail.contains("classic, tlsserver, shortlived"),
            "{problem}"
        );
    }
}
