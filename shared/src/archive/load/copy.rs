//! Loading one table: its chunks streamed from storage, checked against the manifest as
//! they stream, into `COPY ... FREEZE` after a TRUNCATE in the same transaction; or one
//! chunk of a table split across sessions, into a plain COPY of its own.

use std::io::{Read, Write};

use crate::archive::manifest::{BackupManifest, ManifestFile, ManifestTable};
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::storage::{HashingReader, Storage};

/// Loads every chunk of `table` in one transaction that truncates it first (see
/// [`crate::archive::load::schedule::load_data`]); the rows COPY reported, and whether
/// they were stored frozen.
pub(super) fn load_table(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    session: &mut Session,
    table: &ManifestTable,
    progress: &Progress,
) -> Result<(u64, bool)> {
    let name = table.qualified();
    // A role that may insert but not truncate (the tables keep their owners) loads
    // without FREEZE, as plain COPY. So does an extension's configuration table: CREATE
    // EXTENSION filled it with the extension's own rows, which the backup left out.
    let truncate = if manifest.is_extension_config(table) {
        "BEGIN".to_string()
    } else {
        format!("BEGIN; TRUNCATE ONLY {name}")
    };
    let freeze = match session.client.batch_execute(&truncate) {
        Ok(()) if manifest.is_extension_config(table) => false,
        Ok(()) => true,
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            session
                .client
                .batch_execute("ROLLBACK; BEGIN")
                .map_err(|e| Error::query(format!("loading {name}"), &e))?;
            false
        }
        Err(e) => return Err(Error::query(format!("truncating {name} to load it"), &e)),
    };
    let sql = copy_sql(manifest, table, &name, freeze)?;
    let committed = table
        .chunks
        .iter()
        .try_fold(0u64, |rows, chunk| {
            load_chunk(
                storage,
                manifest,
                session,
                &name,
                &sql,
                &chunk.file,
                progress,
            )
            .map(|n| rows + n)
        })
        .and_then(|rows| {
            session
                .client
                .batch_execute("COMMIT")
                .map_err(|e| Error::query(format!("loading {name}"), &e))
                .map(|()| (rows, freeze))
        });
    if committed.is_err() {
        // Leaves the session usable; the restore as a whole has failed anyway.
        let _ = session.client.batch_execute("ROLLBACK");
    }
    committed
}

/// Loads chunk `chunk` of `table`, a table split across sessions (see
/// [`crate::archive::load::schedule::plan`]), with a plain COPY in a transaction of its
/// own (no TRUNCATE, so no FREEZE: the other sessions load the same table meanwhile): the
/// rows COPY reported.
pub(super) fn load_part(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    session: &mut Session,
    table: &ManifestTable,
    chunk: usize,
    progress: &Progress,
) -> Result<u64> {
    let name = table.qualified();
    let sql = copy_sql(manifest, table, &name, false)?;
    let file = &table.chunks[chunk].file;
    load_chunk(storage, manifest, session, &name, &sql, file, progress)
}

/// The COPY ... FROM STDIN that loads `table` (named `name`), with FREEZE or not.
fn copy_sql(
    manifest: &BackupManifest,
    table: &ManifestTable,
    name: &str,
    freeze: bool,
) -> Result<String> {
    // The column list is quoted here from the names, never spliced from the manifest
    // (read_backup has already refused a manifest whose columns are not identifiers); a
    // table without columns has none (`COPY t () ...` is a syntax error).
    let columns = table.column_list().map_err(|problem| {
        crate::archive::verify::corrupt(
            &manifest.id,
            crate::archive::manifest::MANIFEST_FILE,
            &problem,
        )
    })?;
    let columns = if columns.is_empty() {
        String::new()
    } else {
        format!(" ({columns})")
    };
    Ok(format!(
        "COPY {name}{columns} FROM STDIN{}",
        table
            .copy_format
            .copy_options(if freeze { &["FREEZE"] } else { &[] })
    ))
}

/// Loads one chunk file of `manifest` with COPY `sql`: the rows COPY reported. The file is
/// checked against the manifest as it streams (size, SHA-256, zstd's content checksums),
/// and the COPY is committed to only when it matches; when loading fails for any reason,
/// the file is read again whole, and if it does not check out, the backup is blamed (exit
/// 5, naming the file) rather than the database.
fn load_chunk(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    session: &mut Session,
    name: &str,
    sql: &str,
    file: &str,
    progress: &Progress,
) -> Result<u64> {
    let entry = manifest.file(file).ok_or_else(|| {
        crate::archive::verify::corrupt(&manifest.id, file, "not in the manifest")
    })?;
    copy_chunk(storage, manifest, entry, session, name, sql, progress).map_err(|e| match e {
        Error::BackupCorrupt { .. } | Error::BackupKeyMismatch { .. } | Error::Interrupted => e,
        e => crate::archive::verify::blame(storage, manifest, entry).unwrap_or(e),
    })
}

fn copy_chunk(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    file: &ManifestFile,
    session: &mut Session,
    name: &str,
    sql: &str,
    progress: &Progress,
) -> Result<u64> {
    let path = file.path.as_str();
    // Progress counts stored (compressed) bytes, as its total does.
    let mut stored = HashingReader::new(CountingReader {
        inner: storage.open(&manifest.id, path)?,
        progress,
    });
    let mut writer = session
        .client
        .copy_in(sql)
        .map_err(|e| Error::query(format!("loading {name}"), &e))?;
    {
        let plain = crate::archive::crypt::plain(manifest, path, &mut stored)?;
        let mut decoder =
            zstd::Decoder::new(plain).map_err(|e| Error::io("decompress", path, e))?;
        let mut buf = vec![0u8; 1 << 18];
        loop {
            let n = decoder
                .read(&mut buf)
                .map_err(|e| Error::io("decompress", path, e))?;
            if n == 0 {
                break;
            }
            writer.write_all(&buf[..n]).map_err(|e| Error::Query {
                context: format!("loading {name}"),
                sqlstate: None,
                message: e.to_string(),
            })?;
        }
    }
    // The bytes the decoder's buffer holds were hashed when it read them; `finish` reads
    // and hashes whatever is left unread. A mismatch returns before the writer's
    // `finish`: the dropped writer aborts the COPY.
    let (size, sha256) = stored.finish().map_err(|e| Error::io("read", path, e))?;
    if let Some(problem) = crate::archive::verify::mismatch(file, size, &sha256) {
        return Err(crate::archive::verify::corrupt(
            &manifest.id,
            path,
            &problem,
        ));
    }
    let rows = writer
        .finish()
        .map_err(|e| Error::query(format!("loading {name}"), &e))?;
    progress.add_rows(rows);
    Ok(rows)
}

/// Adds the bytes read through it to the progress.
struct CountingReader<'p, R> {
    inner: R,
    progress: &'p Progress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}
