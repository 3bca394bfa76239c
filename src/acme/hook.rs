//! The operator's shell commands: the post-issue hook and the alert hook.
//! Each runs in the background under `/bin/sh -c`, with what it needs in its
//! environment, no stdin, at most [`HOOK_TIMEOUT`]; its outcome is logged,
//! and a hook that fails or hangs never holds up the certificate manager.

use std::time::Duration;

/// The longest a hook may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts `command` (written by the operator as `key`, e.g. "post-issue
/// hook") with `environment` added; returns at once.
pub fn spawn(key: &'static str, command: &str, environment: Vec<(&'static str, String)>) {
    let mut process = tokio::process::Command::new("/bin/sh");
    process
        .arg("-c")
        .arg(command)
        .envs(environment)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // A hook that starts quire (a restart script, say) must not inherit the
    // sockets this process was handed.
    for variable in crate::upgrade::START_VARIABLES {
        process.env_remove(variable);
    }
    let command = command.to_string();
    tokio::spawn(async move {
        match tokio::time::timeout(HOOK_TIMEOUT, process.output()).await {
            Ok(Ok(out)) if out.status.success() => {
                tracing::info!("{key} `{command}` succeeded");
            }
            Ok(Ok(out)) => tracing::error!(
                "{key} `{command}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => tracing::error!("cannot run the {key} `{command}`: {e}"),
            Err(_) => tracing::error!(
                "{key} `{command}` did not finish within {}s and was stopped",
                HOOK_TIMEOUT.as_secs()
            ),
        }
    });
}
