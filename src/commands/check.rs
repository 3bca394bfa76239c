//! `quire check`: every problem at once, `file:line: what, what to do`, on
//! stdout; a summary on stderr; exit 1 if there is any. Then warnings, which
//! do not change the exit code: URLs the last `quire serve` served (its
//! record in the data directory) that this build would break.

use std::process::ExitCode;

use super::load_config;
use crate::cli::ConfigArgs;
use crate::clock::SharedClock;
use crate::config::Overrides;
use crate::datadir::DataDir;
use crate::site;
use crate::site::served::Record;

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
    let record_path = DataDir::new(&config.paths.data).served_urls();
    let warnings = match Record::read(&record_path) {
        Ok(Some(record)) => {
            let routed = |path: &str| snapshot.route(path).is_some();
            record.warnings(routed, &snapshot.sources, &config.paths.content)
        }
        Ok(None) => Vec::new(),
        Err(e) => {
            eprintln!(
                "could not read {} ({e}); URLs served before were not compared",
                record_path.display()
            );
            Vec::new()
        }
    };
    for warning in &warnings {
        println!("{warning}");
    }
    eprintln!(
        "checked {} posts, {} pages, {} assets in {} ms: {} problem(s), {} warning(s)",
        s.posts,
        s.pages,
        s.assets,
        s.took.as_millis(),
        s.problems.len(),
        warnings.len()
    );
    Ok(if s.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
