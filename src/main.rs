//! The `quire` binary: everything happens in [`quire::cli`].

fn main() -> std::process::ExitCode {
    quire::cli::main()
}
