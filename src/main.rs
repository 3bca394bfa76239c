//! The `quire` binary: parses the command line ([`quire::cli`]) and hands it
//! to [`quire::commands`], which runs it and chooses the exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    quire::commands::main(quire::cli::Cli::parse())
}
