//! The network edge every command shares: binding listening sockets
//! ([`bind`], `[::]` as a dual stack), the sockets given at start by systemd or
//! a predecessor ([`Inherited`], named by [`SocketName`]), the accept loop
//! that serves plain HTTP and HTTPS alike (`accept`) on every serving core
//! ([`Cores`]), what a connection runs per request (`service`: an [`App`]),
//! and [`Listeners`], the one way a command starts a set of them. The table of open connections
//! (`connections`) lives here rather than in `tls` because it is the accept
//! loop's: it tracks every TCP connection, encrypted or not.

mod accept;
mod bind;
mod connections;
mod cores;
mod inherited;
mod listeners;
mod name;
mod service;

pub use accept::{Listener, LiveLimits, live_limits};
pub use bind::{BindError, bind, listen};
pub use cores::Cores;
pub use inherited::{InheritError, Inherited, pass_sockets};
pub use listeners::Listeners;
pub use name::SocketName;
pub use service::{App, PeerAddr, Respond};
