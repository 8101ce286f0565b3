//! The subcommands.
pub mod check;
pub mod gc;
pub mod ps;
pub mod run;
pub mod update;
