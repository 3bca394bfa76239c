//! The last errors and warnings the server logged, kept in memory for the
//! dashboard: a `tracing` layer that copies each WARN or ERROR event into a
//! small ring. Logging is process-wide, and so is this ring.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// One logged problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedProblem {
    pub at: DateTime<Utc>,
    pub level: &'static str,
    pub message: String,
}

const KEPT: usize = 20;

static RECENT: Mutex<VecDeque<LoggedProblem>> = Mutex::new(VecDeque::new());

/// The latest problems, newest first.
pub fn problems() -> Vec<LoggedProblem> {
    let ring = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    ring.iter().rev().cloned().collect()
}

fn keep(problem: LoggedProblem) {
    let mut ring = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    if ring.len() == KEPT {
        ring.pop_front();
    }
    ring.push_back(problem);
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
        keep(LoggedProblem {
            at: Utc::now(),
            level: if level == Level::ERROR {
                "error"
            } else {
                "warning"
            },
            message: text.0,
        });
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
        assert!(!kept.iter().any(|p| p.message == "not kept"));
    }
}
