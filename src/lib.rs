//! quire: a blog server that runs its own operations. `cli` is the entry point;
//! `system` starts the activities; each folder owns one activity.

pub mod cli;
pub mod clock;
pub mod config;
pub mod shutdown;
pub mod site;
pub mod system;
pub mod web;
