//! What goes wrong loading a configuration: each [`ConfigProblem`] with its
//! typed [`Origin`] (a line of the file, an environment variable, a flag), and
//! the [`ConfigError`] that carries all of them at once.

use std::fmt;
use std::path::PathBuf;

/// Where a problem comes from, printed as `quire check` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the config file; `file` is `None` for text given without a
    /// file name.
    Line {
        file: Option<PathBuf>,
        line: usize,
    },
    /// The config file as a whole, for a default it makes unusable.
    File(Option<PathBuf>),
    /// A required key missing from the merged configuration.
    Missing,
    Env(&'static str),
    Flag(&'static str),
}

impl Origin {
    /// The line in the file, or 0 for problems that come from elsewhere: they
    /// sort first.
    pub fn line(&self) -> usize {
        match self {
            Origin::Line { line, .. } => *line,
            _ => 0,
        }
    }
}

/// How an unnamed config text is called, and a missing key's origin.
const UNNAMED: &str = "config";

fn file_name(file: &Option<PathBuf>) -> std::borrow::Cow<'_, str> {
    file.as_ref()
        .map_or(UNNAMED.into(), |path| path.to_string_lossy())
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line { file, line } => write!(f, "{}:{line}", file_name(file)),
            Origin::File(file) => f.write_str(&file_name(file)),
            Origin::Missing => f.write_str(UNNAMED),
            Origin::Env(name) | Origin::Flag(name) => f.write_str(name),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub origin: Origin,
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config file {path}: {source}; check the path, or run without --config to use the built-in defaults"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems_text(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn problems_text(problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!(
        "{} problem(s) in the configuration:\n{}",
        problems.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_print_as_check_shows_them() {
        let file = Some(PathBuf::from("/etc/quire/quire.toml"));
        let cases = [
            (
                Origin::Line {
                    file: file.clone(),
                    line: 3,
                },
                "/etc/quire/quire.toml:3",
            ),
            (
                Origin::Line {
                    file: None,
                    line: 2,
                },
                "config:2",
            ),
            (Origin::File(file), "/etc/quire/quire.toml"),
            (Origin::File(None), "config"),
            (Origin::Missing, "config"),
            (Origin::Env("QUIRE_MODE"), "QUIRE_MODE"),
            (Origin::Flag("--mode"), "--mode"),
        ];
        for (origin, text) in cases {
            assert_eq!(origin.to_string(), text);
        }
    }

    #[test]
    fn only_a_file_line_has_a_line_even_when_the_name_looks_like_one() {
        let named_like_a_line = Some(PathBuf::from("/srv/blog:8"));
        assert_eq!(Origin::File(named_like_a_line.clone()).line(), 0);
        let line = Origin::Line {
            file: named_like_a_line,
            line: 4,
        };
        assert_eq!(line.line(), 4);
        assert_eq!(Origin::Flag("--mode").line(), 0);
    }
}
