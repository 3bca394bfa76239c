//! `quire import SOURCE [--into DIR] [--fetch-images]`: runs the import into
//! the content folder and prints what it did: counts, then every problem
//! with its file:line. Exit 0 when it imported (problems listed), 1 when
//! SOURCE cannot be read or a file cannot be written.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::load_config;
use crate::cli::ConfigArgs;
use crate::config::Overrides;
use crate::import::{self, Options, Report};

pub fn run(
    source: &str,
    into: Option<PathBuf>,
    fetch_images: bool,
    config_args: &ConfigArgs,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_args, Overrides::default())?;
    let into = into.unwrap_or_else(|| config.paths.content.clone());
    let post_url = |slug: &str, date: DateTime<Utc>| config.site.post_url.resolve(slug, date);
    let options = Options {
        into: into.clone(),
        fetch_images,
        post_url: &post_url,
    };
    let report = import::run(source, &options).with_context(|| format!("importing {source}"))?;
    print!("{}", summary(&report, &into));
    Ok(ExitCode::SUCCESS)
}

fn summary(r: &Report, into: &std::path::Path) -> String {
    let mut out = String::new();
    let from = r.kind.as_ref().map_or(String::new(), |k| k.to_string());
    out.push_str(&format!("imported {from} into {}\n", into.display()));
    out.push_str(&format!(
        "  {} posts ({} drafts), {} pages, {} redirects (aliases) kept\n",
        r.posts, r.drafts, r.pages, r.redirects
    ));
    out.push_str(&format!(
        "  images: {} copied, {} fetched, {} remote left as links\n",
        r.images_copied,
        r.images_fetched,
        r.images_remote.len()
    ));
    if r.written.is_empty() {
        out.push_str(&format!(
            "  added nothing: {} files were already imported, {} left alone\n",
            r.unchanged.len(),
            r.conflicts.len()
        ));
    } else {
        out.push_str(&format!(
            "  wrote {} files; {} already imported, {} left alone\n",
            r.written.len(),
            r.unchanged.len(),
            r.conflicts.len()
        ));
    }
    if !r.conflicts.is_empty() {
        out.push_str("already there with other content, left alone (move it away and import again to take the source's):\n");
        for rel in &r.conflicts {
            out.push_str(&format!("  {}\n", into.join(rel).display()));
        }
    }
    if !r.images_remote.is_empty() {
        out.push_str(
            "remote images, still served from the old site (--fetch-images downloads them):\n",
        );
        for note in &r.images_remote {
            out.push_str(&format!("  {note}\n"));
        }
    }
    if !r.unmapped.is_empty() {
        out.push_str(&format!("not mapped ({}):\n", r.unmapped.len()));
        for note in &r.unmapped {
            out.push_str(&format!("  {note}\n"));
        }
    }
    out
}
