//! A key TOML's types or the schema refuse, said in the operator's words:
//! serde writes `invalid type: string "ten", expected i64`, an operator reads
//! `"ten" is text in quotes; use a whole number, such as 10`. The kinds a TOML
//! type does not tell apart (a duration, an address) are their own raw types
//! in `raw`, whose expectation arrives here already in words. The wording
//! itself is shared with front matter, in `crate::serde_words`; this file adds
//! the config's keys and sections.

use crate::serde_words::{self, UnknownKey};

/// A refused key, and what to write instead.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    /// The dotted key (`site.posts_per_page`); for an unknown key, the table
    /// it was written in, or the unknown table itself.
    pub key: String,
    pub message: String,
}

/// Where every key is explained, for refusals that list no alternatives.
const DOCUMENTED: &str = "every key is documented in config.example.toml";

impl Refusal {
    pub(super) fn of(e: &toml::de::Error) -> Refusal {
        let path = key_path(e);
        let message = e.message().trim_end();
        if let Some(words) = serde_words::wrong_type(message, &path) {
            return Refusal {
                message: words,
                key: path,
            };
        }
        if let Some(unknown) = serde_words::unknown_key(message) {
            return unknown_key(&path, unknown);
        }
        Refusal {
            key: if path.is_empty() { "toml".into() } else { path },
            message: format!("{message}; fix the file ({DOCUMENTED})"),
        }
    }
}

/// The dotted key an error is about. toml keeps it private, and prints it
/// (as "in `a.b`") only when it has no source text to quote instead.
fn key_path(e: &toml::de::Error) -> String {
    let mut bare = e.clone();
    bare.set_input(None);
    bare.to_string()
        .lines()
        .find_map(|line| {
            line.strip_prefix("in `")?
                .strip_suffix('`')
                .map(String::from)
        })
        .unwrap_or_default()
}

/// serde's `unknown field`, with the keys the table does take.
fn unknown_key(table: &str, UnknownKey { name, known }: UnknownKey) -> Refusal {
    if table.is_empty() {
        let sections: Vec<String> = known.iter().map(|k| format!("[{k}]")).collect();
        Refusal {
            key: name.into(),
            message: format!(
                "unknown section `{name}`; use {} ({DOCUMENTED})",
                serde_words::or_list(&sections)
            ),
        }
    } else {
        let keys: Vec<String> = known.iter().map(|k| k.to_string()).collect();
        Refusal {
            key: table.into(),
            message: format!(
                "unknown key `{name}`; [{table}] takes {} ({DOCUMENTED})",
                serde_words::or_list(&keys)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw::RawFile;
    use super::*;

    fn refusal(text: &str) -> Refusal {
        Refusal::of(&toml::from_str::<RawFile>(text).unwrap_err())
    }

    fn said(key: &str, message: &str) -> Refusal {
        Refusal {
            key: key.into(),
            message: message.into(),
        }
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(
            refusal("[site]\nposts_per_page = \"ten\"\n"),
            said(
                "site.posts_per_page",
                "\"ten\" is text in quotes; use a whole number, such as 10"
            )
        );
        assert_eq!(
            refusal("[limits]\nmax_connections = 3.5\n"),
            said(
                "limits.max_connections",
                "3.5 is a decimal number; use a whole number, such as 10"
            )
        );
        assert_eq!(
            refusal("[site]\nposts_per_page = 99999999999999999999\n"),
            said(
                "site.posts_per_page",
                "99999999999999999999 is too large a number; use a whole number, such as 10"
            )
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            refusal("[stats]\nflush_every = 10\n"),
            said(
                "stats.flush_every",
                "10 is a number; use a duration in quotes, such as \"10s\" or \"8h\""
            )
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            refusal("[listen]\nhttp = 8080\n"),
            said(
                "listen.http",
                "8080 is a number; use an address in quotes, such as \"127.0.0.1:8080\" or \"[::]:443\""
            )
        );
    }

    #[test]
    fn true_or_false() {
        assert_eq!(
            refusal("[stats]\nenabled = \"yes\"\n"),
            said(
                "stats.enabled",
                "\"yes\" is text in quotes; use true or false"
            )
        );
        assert_eq!(
            refusal("[metrics]\nenabled = 1\n"),
            said("metrics.enabled", "1 is a number; use true or false")
        );
    }

    #[test]
    fn lists_of_strings() {
        assert_eq!(
            refusal("[domains]\nnames = \"blog.example.com\"\n"),
            said(
                "domains.names",
                "\"blog.example.com\" is text in quotes; use a list of strings, such as [\"a\", \"b\"]"
            )
        );
        assert_eq!(
            refusal("[domains]\nnames = [1]\n"),
            said("domains.names", "1 is a number; use text in quotes")
        );
    }

    #[test]
    fn text() {
        assert_eq!(
            refusal("[site]\ntitle = 2026-01-01\n"),
            said(
                "site.title",
                "the value is a table or a date; use text in quotes"
            )
        );
        assert_eq!(
            refusal("[site]\ntitle = [\"a\"]\n"),
            said("site.title", "the value is a list; use text in quotes")
        );
        assert_eq!(
            refusal("[site]\ntitle = true\n"),
            said("site.title", "true is a yes/no value; use text in quotes")
        );
    }

    #[test]
    fn tables() {
        assert_eq!(
            refusal("site = 5\n"),
            said(
                "site",
                "5 is a number; use a table: a [site] line with its keys below it"
            )
        );
    }

    #[test]
    fn unknown_keys_and_sections_list_the_known_ones() {
        assert_eq!(
            refusal("[site]\ntitel = \"x\"\n"),
            said(
                "site",
                "unknown key `titel`; [site] takes title, base_url, author, description, language, posts_per_page or post_url (every key is documented in config.example.toml)"
            )
        );
        assert_eq!(
            refusal("[metrics]\ntoken = \"0123456789abcdef\"\nenable = true\n"),
            said(
                "metrics",
                "unknown key `enable`; [metrics] takes enabled or token (every key is documented in config.example.toml)"
            )
        );
        assert_eq!(
            refusal("[lisen]\n"),
            said(
                "lisen",
                "unknown section `lisen`; use [site], [domains], [paths], [listen], [tls], [stats], [metrics], [limits] or [cluster] (every key is documented in config.example.toml)"
            )
        );
    }

    #[test]
    fn no_serde_type_name_is_left_in_any_refusal() {
        let wrong = [
            "[site]\nposts_per_page = \"ten\"\n",
            "[site]\nposts_per_page = true\n",
            "[limits]\nmax_header_bytes = [1]\n",
            "[tls]\nrenew_before_days = 1.5\n",
            "[tls]\ncontacts = \"you@example.com\"\n",
            "[tls]\nhsts = \"no\"\n",
            "[tls]\ncheck_every = 8\n",
            "[listen]\nlocal_ca = 8444\n",
            "[listen]\ntrusted_proxies = \"10.0.0.0/8\"\n",
            "[paths]\ncontent = 1\n",
            "tls = \"local\"\n",
        ];
        for text in wrong {
            let said = refusal(text);
            for leak in [
                "i64",
                "a boolean",
                "a sequence",
                "a string",
                "struct",
                "invalid type",
                "expected",
                "Raw",
            ] {
                assert!(!said.message.contains(leak), "{text:?}: {said:?}");
            }
            assert!(said.message.contains("; use "), "{text:?}: {said:?}");
        }
    }
}
