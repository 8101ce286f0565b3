//! The runtime's host side: safe file and socket operations on paths a vassal names, and
//! the little it needs to know about host users.
pub mod bridge;
pub mod hostfs;
pub mod start;
pub mod users;
