//! The subcommands.
pub mod check;
pub mod gc;
pub mod metrics;
pub mod ps;
pub mod run;
pub mod update;
pub mod vassals;
