//! Creating the database a backup is loaded into, and dropping it.

use crate::archive::manifest::BackupManifest;
use crate::error::{Error, Result};
use crate::sql::{quote_ident, quote_literal};

/// Creates database `name` with the backup's encoding and locale (from template0, so it is
/// empty), using a session on another database of the same server.
pub fn create_database(
    admin: &mut postgres::Client,
    name: &str,
    manifest: &BackupManifest,
) -> Result<()> {
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(name),
            quote_literal(&manifest.encoding),
            quote_literal(&manifest.lc_collate),
            quote_literal(&manifest.lc_ctype)
        ))
        .map_err(|e| Error::query(format!("creating database {name}"), &e))
}

/// Drops database `name`, ending its sessions first (PostgreSQL 13's `WITH (FORCE)`).
pub fn drop_database(admin: &mut postgres::Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .map_err(|e| Error::query(format!("dropping database {name}"), &e))
}
