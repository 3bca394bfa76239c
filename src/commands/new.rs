//! `quire new "Title"`: writes a draft post with front matter into the
//! configured content directory and prints its path.

use std::process::ExitCode;

use super::load_config;
use crate::cli::ConfigArgs;
use crate::clock::SharedClock;
use crate::config::Overrides;

pub fn run(title: &str, config: &ConfigArgs, clock: &SharedClock) -> anyhow::Result<ExitCode> {
    let config = load_config(config, Overrides::default())?;
    let path = crate::site::new_post::create(&config.paths.content, title, clock.now())?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
