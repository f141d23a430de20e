//! Running a history-changing command under Prisma's advisory lock (deploy, resolve,
//! rollback), released on every path; a dry run reads without locking.

use std::time::Duration;

use crate::connect::Session;
use crate::migrations::history::{self, MigrationLock};
use crate::output::Failure;

/// How long resolve and rollback wait for the migration lock (Prisma's 10 s).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Runs `body` holding the migration lock (none in a dry run), then releases it.
pub fn with_migration_lock<T>(
    session: &mut Session,
    wait: Duration,
    dry_run: bool,
    body: impl FnOnce(&mut postgres::Client, &str) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let schema = session.schema().to_string();
    let client = &mut session.client;
    let lock = if dry_run {
        None
    } else {
        let disabled =
            history::lock_disabled(std::env::var(history::DISABLE_LOCK_ENV).ok().as_deref());
        Some(MigrationLock::acquire(client, wait, disabled)?)
    };
    let result = body(client, &schema);
    if let Some(lock) = lock {
        lock.release(client);
    }
    result
}
