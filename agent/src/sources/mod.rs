//! Where the agent reads from. Today: files.

pub mod file;
