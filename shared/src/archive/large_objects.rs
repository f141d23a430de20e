//! Large objects (`lo_create`, `lo_from_bytea`: `pg_largeobject` and
//! `pg_largeobject_metadata`) belong to no table, and `pg_dump --schema-only` leaves them
//! out, so a backup carries them in a file of their own: `large_objects.dump.zst`, a
//! custom-format archive of nothing but them (their owners, privileges, comments and
//! contents), written by pg_dump from the backup's snapshot (see [`crate::archive::write`]). A
//! `--backup-format sql` backup carries them inside `backup.sql.zst`, as pg_dump writes a
//! whole database.
//!
//! Restoring streams the file through its checks (size, SHA-256, zstd's content
//! checksums) into pg_restore's standard input: no large object is ever held whole in
//! memory, pg_dump and pg_restore read and write them in pieces. Afterwards the number of
//! large objects in the target is compared with the manifest, as rows are.

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::manifest::{BackupFormat, BackupManifest, LARGE_OBJECTS_FILE};
use crate::connect::dburl::ConnectionSettings;
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::storage::{HashingReader, Storage};

use crate::archive::{load, verify};
use crate::pgtools;

/// How many large objects a restore of `manifest` loads: the manifest's count, unless
/// they are not in the backup or `skip` (`--no-large-objects`) leaves them out. `None`
/// for a manifest written before pgward counted them: a directory-format one holds none,
/// a sql-format one whatever its plain dump holds.
pub fn to_restore(manifest: &BackupManifest, skip: bool) -> Option<u64> {
    manifest
        .large_objects
        .as_ref()
        .map(|lo| if lo.held() && !skip { lo.count } else { 0 })
}

/// The file a directory-format restore of `manifest` streams its large objects from, if
/// it restores any (see [`to_restore`]).
pub fn file_to_restore(manifest: &BackupManifest, skip: bool) -> Option<&'static str> {
    (manifest.format == BackupFormat::Directory && to_restore(manifest, skip) > Some(0))
        .then_some(LARGE_OBJECTS_FILE)
}

/// What in `manifest` contradicts itself about large objects, if anything: a count
/// without the file that holds them, or the file without a count. Either way the
/// manifest is not what pgward wrote, and restoring it could leave them out unsaid.
pub fn inconsistency(manifest: &BackupManifest) -> Option<&'static str> {
    if manifest.format != BackupFormat::Directory {
        return None;
    }
    let counted = manifest.large_objects.as_ref().is_some_and(|lo| lo.held());
    match (counted, manifest.file(LARGE_OBJECTS_FILE).is_some()) {
        (true, false) => Some("the manifest counts large objects but does not list their file"),
        (false, true) => Some("the manifest lists the large objects' file but counts none"),
        _ => None,
    }
}

/// Why a restore of `manifest` leaves large objects out, if it does: the text of the
/// `LARGE_OBJECTS_NOT_RESTORED` warning.
pub fn not_restored(manifest: &BackupManifest, skip: bool) -> Option<String> {
    let id = &manifest.id;
    match &manifest.large_objects {
        // Plain dumps of a whole database always carried them.
        None if manifest.format == BackupFormat::Sql => None,
        None => Some(format!(
            "backup {id} was taken by a pgward (version {}) that did not back up large objects: any large objects {} held are not in it and were not restored",
            manifest.tool_version, manifest.database
        )),
        Some(lo) if lo.excluded && lo.count > 0 => Some(format!(
            "backup {id} was taken with --no-large-objects: the {} large object(s) {} held then are not in it and were not restored",
            lo.count, manifest.database
        )),
        Some(lo) if skip && lo.held() => Some(format!(
            "--no-large-objects: the {} large object(s) of backup {id} were not restored",
            lo.count
        )),
        _ => None,
    }
}

/// Restores the large objects of `manifest` into `target`: [`LARGE_OBJECTS_FILE`] streamed
/// through its checks into pg_restore. A file that does not match the manifest fails with
/// [`Error::BackupCorrupt`] naming it (pg_restore may have loaded some of it by then: the
/// restore loads into a database that is dropped when it fails, or checked the file
/// before). Once `stop` is set (the rest of the restore failed), the stream ends at the
/// next piece.
pub fn restore(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    target: &ConnectionSettings,
    no_owner: bool,
    stop: &AtomicBool,
) -> Result<()> {
    let entry = manifest.file(LARGE_OBJECTS_FILE).ok_or_else(|| {
        verify::corrupt(
            &manifest.id,
            LARGE_OBJECTS_FILE,
            "the manifest counts large objects but does not list their file",
        )
    })?;
    crate::log::info(&format!(
        "restoring {} large object(s)",
        to_restore(manifest, false).unwrap_or_default()
    ));
    // A missing file is the backup's fault (exit 5), not the store's.
    let stored = storage
        .open(&manifest.id, LARGE_OBJECTS_FILE)
        .map_err(|e| verify::blame(storage, manifest, entry).unwrap_or(e))?;
    let mut cmd = load::pg_restore_command(target, no_owner);
    cmd.arg("--format=custom").stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| pgtools::not_started("pg_restore", e))?;
    let end_on_interrupt = pgtools::EndOnInterrupt::new(&child);
    let stderr_reader = pgtools::stderr_reader(&mut child);
    let mut stored = HashingReader::new(stored);
    let streamed = (|| -> std::io::Result<(u64, String)> {
        let plain = crate::archive::crypt::plain(manifest, LARGE_OBJECTS_FILE, &mut stored)
            .map_err(std::io::Error::other)?;
        let mut decoder = zstd::Decoder::new(plain)?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("pg_restore has no standard input"))?;
        // An interrupt stops the stream at the next piece, as the tables' loads stop, and
        // so does a failure elsewhere: the restore has failed, and the rest would only
        // be loaded to be dropped.
        let mut pieces = pgtools::Interruptible(Stoppable {
            inner: &mut decoder,
            stop,
        });
        std::io::copy(&mut pieces, &mut stdin)?;
        drop(stdin);
        drop(decoder);
        stored.finish()
    })();
    if streamed.is_err() {
        // Whatever pg_restore made of a stream cut short is not to be kept.
        let _ = child.kill();
    }
    let status = end_on_interrupt
        .wait(&mut child)
        .map_err(|e| Error::io("wait for", "pg_restore", e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    interrupt::check()?;
    let (size, sha256) = match streamed {
        Ok(read) => read,
        // pg_restore stopped reading (its error says why), the file did not decompress,
        // or the store failed: the file, read again whole, is blamed if it is bad.
        Err(e) => {
            if let Some(bad) = verify::blame(storage, manifest, entry) {
                return Err(bad);
            }
            pgtools::check_status("pg_restore", status, &stderr)?;
            return Err(Error::io("read", LARGE_OBJECTS_FILE, e));
        }
    };
    if let Some(problem) = verify::mismatch(entry, size, &sha256) {
        return Err(verify::corrupt(&manifest.id, LARGE_OBJECTS_FILE, &problem));
    }
    pgtools::check_status("pg_restore", status, &stderr)
}

/// A reader that fails once `stop` is set.
struct Stoppable<'s, R> {
    inner: R,
    stop: &'s AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "stopped: the rest of the restore failed",
            ));
        }
        self.inner.read(buf)
    }
}

/// Counts the large objects in the restored database and compares them with `expected`
/// when the manifest says (exit 5 `ROW_COUNT_MISMATCH` when they differ): the target was
/// new or empty, so it holds exactly what the restore loaded.
pub fn check_count(session: &mut Session, expected: Option<u64>) -> Result<u64> {
    let restored: i64 = session
        .client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata",
            &[],
        )
        .map_err(|e| Error::query("counting the restored large objects", &e))?
        .get(0);
    let restored = restored.max(0) as u64;
    if let Some(expected) = expected.filter(|&e| e != restored) {
        return Err(Error::RowCountMismatch {
            tables: format!("large objects: {restored} restored, {expected} in the backup"),
        });
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `format` with `large_objects` (JSON, or none) and `files`.
    fn manifest(format: &str, large_objects: Option<&str>, files: &[&str]) -> BackupManifest {
        let files: Vec<String> = files
            .iter()
            .map(|f| format!(r#"{{"path": "{f}", "size": 1, "sha256": "00"}}"#))
            .collect();
        let large_objects = large_objects
            .map(|lo| format!(r#", "large_objects": {lo}"#))
            .unwrap_or_default();
        serde_json::from_str(&format!(
            r#"{{"format_version": 1, "id": "app-default-20261122T031300Z", "format": "{format}",
                "tool_version": "0.1.0", "database": "app", "env": null, "label": null,
                "server_version": "15", "pg_dump_version": "15", "encoding": "UTF8",
                "lc_collate": "C", "lc_ctype": "C", "snapshot_time": "2026-11-22T03:13:00Z",
                "started_at": "2026-11-22T03:13:00Z", "finished_at": "2026-11-22T03:13:00Z",
                "zstd_level": 3, "migration_head": null, "files": [{}], "tables": [],
                "sequences": []{large_objects}}}"#,
            files.join(", ")
        ))
        .expect("a valid manifest")
    }

    #[test]
    fn what_a_restore_loads_and_says_follows_the_manifest() {
        let held = manifest("directory", Some(r#"{"count": 3}"#), &[LARGE_OBJECTS_FILE]);
        assert_eq!(to_restore(&held, false), Some(3));
        assert_eq!(to_restore(&held, true), Some(0));
        assert_eq!(file_to_restore(&held, false), Some(LARGE_OBJECTS_FILE));
        assert_eq!(file_to_restore(&held, true), None);
        assert_eq!(inconsistency(&held), None);
        assert_eq!(not_restored(&held, false), None);
        assert!(not_restored(&held, true).is_some_and(|m| m.contains("3 large object(s)")));

        let excluded = manifest("directory", Some(r#"{"count": 3, "excluded": true}"#), &[]);
        assert_eq!(to_restore(&excluded, false), Some(0));
        assert!(not_restored(&excluded, false).is_some_and(|m| m.contains("--no-large-objects")));

        let none = manifest("directory", Some(r#"{"count": 0}"#), &[]);
        assert_eq!(
            (to_restore(&none, false), not_restored(&none, false)),
            (Some(0), None)
        );

        let older = manifest("directory", None, &[]);
        assert_eq!(to_restore(&older, false), None, "unknown: not checked");
        assert!(not_restored(&older, false).is_some());
        let older_sql = manifest("sql", None, &["backup.sql.zst"]);
        assert_eq!(
            not_restored(&older_sql, false),
            None,
            "plain dumps carried them"
        );
        assert_eq!(file_to_restore(&older_sql, false), None);
    }

    #[test]
    fn a_manifest_that_contradicts_itself_about_large_objects_is_named() {
        let unlisted = manifest("directory", Some(r#"{"count": 2}"#), &[]);
        assert!(inconsistency(&unlisted).is_some_and(|p| p.contains("does not list")));
        for lo in [r#"{"count": 0}"#, r#"{"count": 2, "excluded": true}"#] {
            let uncounted = manifest("directory", Some(lo), &[LARGE_OBJECTS_FILE]);
            assert!(inconsistency(&uncounted).is_some_and(|p| p.contains("counts none")));
        }
        let older = manifest("directory", None, &[LARGE_OBJECTS_FILE]);
        assert!(
            inconsistency(&older).is_some(),
            "a file no older pgward wrote"
        );
        let sql = manifest("sql", Some(r#"{"count": 2}"#), &["backup.sql.zst"]);
        assert_eq!(inconsistency(&sql), None);
    }
}
