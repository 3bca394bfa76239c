//! The control socket, `data/control.sock`: how commands reach a running
//! server that owns the work. [`protocol`] is what crosses it and its one
//! encoding; [`server`] is the activity that answers (built by `system`);
//! [`client`] is what the commands use, and depends on nothing server-side.

pub mod client;
pub mod protocol;
pub mod server;
