//! `quire check`: every problem at once, `file:line: what, what to do`, on
//! stdout; a summary on stderr; exit 1 if there is any.

use std::process::ExitCode;

use super::load_config;
use crate::cli::ConfigArgs;
use crate::clock::SharedClock;
use crate::config::Overrides;
use crate::site;

pub fn run(
    config_args: &ConfigArgs,
    drafts: bool,
    clock: &SharedClock,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(
        config_args,
        Overrides {
            drafts,
            ..Default::default()
        },
    ) {
        Ok(config) => config,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let inputs = site::BuildInputs::from_config(&config);
    let snapshot = match site::build(&inputs, clock.now(), None) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let s = &snapshot.summary;
    for problem in &s.problems {
        println!("{problem}");
    }
    eprintln!(
        "checked {} posts, {} pages, {} assets in {} ms: {} problem(s)",
        s.posts,
        s.pages,
        s.assets,
        s.took.as_millis(),
        s.problems.len()
    );
    Ok(if s.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
