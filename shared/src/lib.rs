//! What every pgward binary shares.
//!
//! pgward is a set of small binaries that compose through one JSON document on stdout and
//! documented exit codes. Everything that must mean the same in every binary lives here
//! once: the flags and their resolution against environment and `pgward.toml`
//! ([`config`]), database URLs as Prisma users write them ([`dburl`]), sessions with TLS
//! ([`connect`]), the error type with its codes, exit classes and hints ([`error`]), the
//! envelope and the `main` skeleton ([`output`]) and its other formats ([`render`]),
//! logging ([`log`]), secret redaction ([`redact`]), the audit log ([`audit`]), Ctrl-C
//! ([`interrupt`]), SQL parsing ([`sql`]), and Prisma's migrations folder and history table
//! ([`migrations`], [`history`]).

pub mod archive;
pub mod audit;
pub mod config;
pub mod connect;
pub mod error;
pub mod interrupt;
pub mod log;
pub mod migrations;
pub mod notify;
pub mod output;
pub mod pgtools;
#[cfg(feature = "storage")]
pub mod progress;
pub mod redact;
pub mod render;
pub mod sql;
pub mod state;
#[cfg(feature = "storage")]
pub mod storage;
pub mod workdb;

pub use error::{Error, Exit, Result};
