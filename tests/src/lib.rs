//! The one end-to-end test harness every pgward test crate shares.
//!
//! pgward's binaries only mean something against a real PostgreSQL server, so the
//! integration tests in `tests/tests/*.rs` run the real `pgward-*` executables against a
//! throwaway cluster that this crate starts from the machine's PostgreSQL server binaries.
//! Keeping all of that here means a new end-to-end test is about five lines:
//!
//! ```no_run
//! use pgward_tests::{cluster, run};
//!
//! let db = cluster().create_database();
//! let out = run("migrate", &["status", "--database-url", &db.url()], &[]);
//! out.assert_code(0);
//! assert_eq!(out.json()["ok"], true, "{out}");
//! ```
//!
//! What lives where:
//! - [`cluster()`]: the shared per-process cluster, [`Cluster`] for TLS or private ones.
//! - [`TestDb`]: a fresh database per test, dropped again when the test ends.
//! - [`run()`], [`run_in`], [`spawn`]: the built binaries with a cleared environment.
//! - [`Migrations`], [`write_migrations`]: Prisma migrations folders.
//! - [`run_script`], [`RunningScript`]: the shell scripts in `scripts/`, as a terminal runs them.
//! - [`redact_json`]: stable JSON snapshots without timings, ids and temp paths.
//! - [`s3()`]: a real S3-compatible server (SeaweedFS), [`S3Server`] for private ones.
//! - [`webhook()`]: a real HTTP listener receiving `--notify` messages.

mod browser;
mod cleanup;
mod cluster;
mod database;
mod dbstate;
mod migrations;
mod paths;
mod redact;
mod run;
mod s3;
mod script;
mod server_user;
mod text;
mod tls;
mod webhook;

pub use browser::{artefacts, headless, CHROMIUM};
pub use cluster::{cluster, Cluster, TlsMode, SUPERUSER, SUPERUSER_PASSWORD, TEST_PG_ENV};
pub use database::{without_restrict_lines, TestDb};
pub use dbstate::{assert_same_state, diff_lines, load_rich_fixture, state, DbState};
pub use migrations::{write_migration, write_migrations, Migrations, MIGRATION_LOCK};
pub use paths::{corpus_history, fixtures_dir, path_str, temp_dir, workspace_root, CORPUS_ENV};
pub use redact::{redact_json, redact_temp_paths, TEMP_PATH_PLACEHOLDER};
pub use run::{
    bin, env_refs, error_message, json_ids, json_strings, next_second, on_a_terminal,
    on_a_terminal_ok, restore_after_a_killed_run, restore_into_new_database,
    restore_into_new_database_with, run, run_in, spawn, wait_child, wait_until, warning_codes,
    Output, RUN_TIMEOUT,
};
pub use s3::{s3, S3Server, S3_REGION, WEED_ENV, WEED_VERSION};
pub use script::{bin_dir, in_its_own_terminal_group, run_script, RunningScript, SCRIPT_TIMEOUT};
pub use text::{assert_prose_fits, text_view, PROSE_WIDTH, TEXT_FILTERS};
pub use webhook::webhook;
