//! pgward's common crate: every engine, and everything that must mean the same in every
//! binary.
//!
//! pgward is a set of small binaries that compose through one JSON document on stdout and
//! documented exit codes. Each binary is a thin command-line layer over this crate; no
//! binary depends on another. Where things live:
//!
//! - [`archive`]: the backup format — writing a backup, loading it back, verifying,
//!   listing and pruning, and the databases restores create for their work.
//! - [`migrations`]: Prisma's migrations folder, the history table, where each migration
//!   stands (folder against history) and the warnings that deserves, the statement engine
//!   that runs a migration script and its `--trace`, and the advisory lock.
//! - [`connect`]: database URLs as Prisma users write them, sessions with TLS, COPY
//!   streams; [`pgtools`] finds pg_dump, pg_restore and psql and their versions.
//! - [`storage`]: local folders and S3 (the `storage` feature; migrate and validate build
//!   without it).
//! - The output contract: the catalogue of error and warning codes ([`codes`]), the
//!   error type with its hints ([`error`]), the envelope, the list of every command's
//!   result type and the `main` skeleton ([`output`]), its other formats ([`render`]);
//!   results the renderers read typed: validate's findings ([`findings`]), the health report
//!   ([`health`]).
//! - Around them: flags ([`cli`]) and their resolution against the environment and
//!   `pgward.toml` ([`config`]), SQL parsing with libpg_query ([`sql`]), table lock modes
//!   ([`locks`]), logging ([`log`]), secret redaction ([`redact`]), the audit log
//!   ([`audit`]), webhooks ([`notify`]), the scripts' hooks, health check and run settings
//!   ([`workflow`]), Ctrl-C ([`interrupt`]), progress bars ([`progress`]).
//! - [`fleet`]: any single-database command run over many databases or tenant schemas.

pub mod archive;
pub mod audit;
pub mod cli;
pub mod codes;
pub mod config;
pub mod connect;
pub mod error;
pub mod findings;
pub mod fleet;
pub mod health;
pub mod interrupt;
pub mod locks;
pub mod log;
pub mod migrations;
pub mod notify;
pub mod output;
pub mod pgtools;
#[cfg(feature = "progress")]
pub mod progress;
pub mod redact;
pub mod render;
pub mod retention;
pub mod sql;
#[cfg(feature = "storage")]
pub mod storage;
pub mod workdb;
pub mod workflow;

pub use codes::{ErrorCode, WarningCode};
pub use error::{Error, Exit, Result};
