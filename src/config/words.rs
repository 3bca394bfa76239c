//! A key TOML's types or the schema refuse, said in the operator's words:
//! serde writes `invalid type: string "ten", expected i64`, an operator reads
//! `"ten" is text in quotes; use a whole number, such as 10`. The kinds a TOML
//! type does not tell apart (a duration, an address) are their own raw types
//! in `raw`, whose expectation arrives here already in words.

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
        if let Some((found, expected)) = message
            .strip_prefix("invalid type: ")
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return Refusal {
                message: format!("{}; use {}", found_is(found), expected_as(expected, &path)),
                key: path,
            };
        }
        if let Some((name, known)) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
        {
            let known = known.strip_prefix(", expected ").unwrap_or_default();
            return unknown_key(&path, name, known);
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

/// serde's `Unexpected`, as a sentence about what was written.
fn found_is(found: &str) -> String {
    let quoted = |s: &str| s.trim_matches('`').to_string();
    if let Some(text) = found.strip_prefix("string ") {
        format!("{text} is text in quotes")
    } else if let Some(n) = found.strip_prefix("integer ") {
        match n.strip_suffix(" as i128") {
            Some(n) => format!("{} is too large a number", quoted(n)),
            None => format!("{} is a number", quoted(n)),
        }
    } else if let Some(x) = found.strip_prefix("floating point ") {
        format!("{} is a decimal number", quoted(x))
    } else if let Some(b) = found.strip_prefix("boolean ") {
        format!("{} is a yes/no value", quoted(b))
    } else if found == "sequence" {
        "the value is a list".into()
    } else if found == "map" {
        // TOML dates reach serde as tables too.
        "the value is a table or a date".into()
    } else {
        format!("the value is {found}")
    }
}

/// serde's expectation, as what to write.
fn expected_as(expected: &str, key: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => {
            "a whole number, such as 10".into()
        }
        "a boolean" => "true or false".into(),
        "a string" => "text in quotes".into(),
        "a sequence" => "a list of strings, such as [\"a\", \"b\"]".into(),
        s if s.starts_with("struct ") => format!("a table: a [{key}] line with its keys below it"),
        words => words.into(),
    }
}

/// serde's `unknown field`, with the keys the table does take.
fn unknown_key(table: &str, name: &str, known: &str) -> Refusal {
    let known: Vec<&str> = known
        .trim_start_matches("one of ")
        .split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    let or_list = |items: Vec<String>| match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    };
    if table.is_empty() {
        let sections = known.iter().map(|k| format!("[{k}]")).collect();
        Refusal {
            key: name.into(),
            message: format!(
                "unknown section `{name}`; use {} ({DOCUMENTED})",
                or_list(sections)
            ),
        }
    } else {
        let keys = known.iter().map(|k| k.to_string()).collect();
        Refusal {
            key: table.into(),
            message: format!(
                "unknown key `{name}`; [{table}] takes {} ({DOCUMENTED})",
                or_list(keys)
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
                "unknown key `titel`; [site] takes title, base_url, author, description, language or posts_per_page (every key is documented in config.example.toml)"
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
                "unknown section `lisen`; use [site], [domains], [paths], [listen], [tls], [stats], [metrics] or [limits] (every key is documented in config.example.toml)"
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
