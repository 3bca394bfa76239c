//! The last errors and warnings the server logged, kept in memory for the
//! dashboard: a `tracing` layer that copies each WARN or ERROR event into a
//! small ring. Logging is process-wide, and so is this ring. A problem a site
//! build found in a content file (logged under [`site::problem::LOG_TARGET`])
//! holds only while the build being served still has it: the dashboard shows
//! it resolved once the file is fixed or deleted.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::site::{self, Problem};

/// One logged problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedProblem {
    pub at: DateTime<Utc>,
    pub level: &'static str,
    pub message: String,
    /// Found by a site build in a content file; its message (`file:line:
    /// what`) is its identity, which a later build either has again or not.
    pub from_build: bool,
}

impl LoggedProblem {
    /// True for a build's problem that `current`, the problems of the build
    /// being served, no longer has.
    pub fn resolved_by(&self, current: &[Problem]) -> bool {
        self.from_build && !current.iter().any(|p| p.to_string() == self.message)
    }
}

const KEPT: usize = 20;

/// The latest problems, oldest first.
struct Ring(VecDeque<LoggedProblem>);

impl Ring {
    /// Every rebuild logs all of its problems again: one that is still
    /// listed moves to the front rather than crowding out the others.
    fn keep(&mut self, problem: LoggedProblem) {
        if problem.from_build {
            self.0
                .retain(|p| !(p.from_build && p.message == problem.message));
        }
        if self.0.len() == KEPT {
            self.0.pop_front();
        }
        self.0.push_back(problem);
    }

    fn newest_first(&self) -> Vec<LoggedProblem> {
        self.0.iter().rev().cloned().collect()
    }
}

static RECENT: Mutex<Ring> = Mutex::new(Ring(VecDeque::new()));

/// The latest problems, newest first.
pub fn problems() -> Vec<LoggedProblem> {
    RECENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .newest_first()
}

/// Install beside the log formatter.
pub struct RecentProblems;

impl<S: Subscriber> Layer<S> for RecentProblems {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let problem = LoggedProblem {
            at: Utc::now(),
            level: if level == Level::ERROR {
                "error"
            } else {
                "warning"
            },
            message: text.0,
            from_build: event.metadata().target() == site::problem::LOG_TARGET,
        };
        RECENT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keep(problem);
    }
}

/// The message, then any other fields as `name=value`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_newest_first() {
        let subscriber = tracing_subscriber::registry().with(RecentProblems);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(task = "x", "first {}", 1);
            tracing::error!("second");
        });
        let kept = problems();
        let ours: Vec<&LoggedProblem> = kept
            .iter()
            .filter(|p| p.message.starts_with("first") || p.message == "second")
            .collect();
        assert_eq!(ours[0].message, "second");
        assert_eq!(ours[0].level, "error");
        assert_eq!(ours[1].message, "first 1 task=\"x\"");
        assert!(!ours[1].from_build);
        assert!(!kept.iter().any(|p| p.message == "not kept"));
    }

    fn broken(name: &str) -> Problem {
        Problem::new(
            PathBuf::from(format!("content/posts/{name}.md")),
            2,
            "no title".into(),
        )
    }

    #[test]
    fn a_build_problem_is_resolved_once_a_build_no_longer_has_it() {
        let subscriber = tracing_subscriber::registry().with(RecentProblems);
        let (fixed, still) = (broken("recent-fixed"), broken("recent-still"));
        tracing::subscriber::with_default(subscriber, || {
            fixed.log();
            still.log();
        });
        let kept = problems();
        let logged = |p: &Problem| {
            kept.iter()
                .find(|l| l.message == p.to_string())
                .unwrap_or_else(|| panic!("{p} was not kept: {kept:?}"))
                .clone()
        };
        let (fixed, still) = (logged(&fixed), logged(&still));
        assert!(fixed.from_build && fixed.level == "warning");
        let next_build = [broken("recent-still"), broken("other")];
        assert!(fixed.resolved_by(&next_build));
        assert!(!still.resolved_by(&next_build));
        assert!(still.resolved_by(&[]), "a deleted file has no problems");
    }

    #[test]
    fn a_problem_logged_by_anything_else_is_never_resolved_by_a_build() {
        let other = LoggedProblem {
            at: Utc::now(),
            level: "error",
            message: "rebuild failed".into(),
            from_build: false,
        };
        assert!(!other.resolved_by(&[]));
    }

    #[test]
    fn a_problem_each_rebuild_logs_again_is_kept_once() {
        let mut ring = Ring(VecDeque::new());
        let logged = |message: &str, from_build| LoggedProblem {
            at: Utc::now(),
            level: "warning",
            message: message.into(),
            from_build,
        };
        for _ in 0..KEPT {
            ring.keep(logged("a.md: no title", true));
            ring.keep(logged("b.md: no date", true));
            ring.keep(logged("disk slow", false));
            ring.keep(logged("disk slow", false));
        }
        let messages: Vec<String> = ring.newest_first().into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages.iter().filter(|m| *m == "a.md: no title").count(),
            1
        );
        assert_eq!(messages.iter().filter(|m| *m == "b.md: no date").count(), 1);
        assert_eq!(messages.len(), KEPT);
    }
}
