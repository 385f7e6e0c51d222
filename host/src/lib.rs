//! OpenClaw Voice host: loads speech plugins, runs the voice pipeline, and serves operations
//! endpoints. The binary (`main.rs`) is a thin edge over this library.
//!
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod agent;
pub mod cli;
pub mod commands;
pub mod config;
pub mod guild;
pub mod ops;
pub mod pipeline;
pub mod plugins;
pub mod telemetry;
pub mod voice;
