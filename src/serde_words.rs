//! serde's refusals in the writer's words, for every file a person writes (the
//! config and front matter): serde says `invalid type: string "ten", expected
//! i64`, a person reads `"ten" is text in quotes; use a whole number, such as
//! 10`. Kinds serde does not tell apart (a duration, a date) bring their own
//! expectation in words through their `Visitor`, which passes through as is.

/// A value of the wrong type, said as what was written and what to write
/// instead; `None` when the message is not about a type. `key` names the
/// table that a table was expected for.
pub fn wrong_type(message: &str, key: &str) -> Option<String> {
    let (_, rest) = message.split_once("invalid type: ")?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    Some(format!(
        "{}; use {}",
        found_is(found),
        expected_as(expected, key)
    ))
}

/// A key the schema does not take, and the keys it does.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownKey<'a> {
    pub name: &'a str,
    pub known: Vec<&'a str>,
}

/// serde's `unknown field`, taken apart; `None` for any other message.
pub fn unknown_key(message: &str) -> Option<UnknownKey<'_>> {
    let (_, rest) = message.split_once("unknown field `")?;
    let (name, known) = rest.split_once('`')?;
    let known = known
        .strip_prefix(", expected ")
        .unwrap_or_default()
        .trim_start_matches("one of ")
        .split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim_matches('`'))
        .filter(|k| !k.is_empty())
        .collect();
    Some(UnknownKey { name, known })
}

/// `a, b or c`.
pub fn or_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
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
    } else if found == "unit value" {
        "the value is empty".into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_before_the_message_is_passed_over() {
        // serde_yaml puts the key's path first.
        assert_eq!(
            wrong_type(
                "draft: invalid type: string \"yes\", expected a boolean",
                "draft"
            )
            .as_deref(),
            Some("\"yes\" is text in quotes; use true or false")
        );
        assert_eq!(
            unknown_key("unknown field `colour`, expected `title` or `date`"),
            Some(UnknownKey {
                name: "colour",
                known: vec!["title", "date"]
            })
        );
        assert_eq!(wrong_type("`x` is not a date", "date"), None);
        assert_eq!(unknown_key("`x` is not a date"), None);
    }
}
