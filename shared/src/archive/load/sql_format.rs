//! Loading a `--format sql` backup: psql in restricted mode, fed line by line through
//! [`SqlGuard`], committed only once the whole file matched the manifest.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use crate::archive::large_objects;
use crate::archive::load::sql_guard::SqlGuard;
use crate::archive::load::{since, LoadReport, APP};
use crate::archive::manifest::{BackupManifest, ManifestFile, SQL_FILE};
use crate::connect::connect;
use crate::connect::dburl::ConnectionSettings;
use crate::connect::libpq::libpq_dbname_arg;
use crate::error::{Error, Result};
use crate::pgtools;
use crate::storage::{HashingReader, Storage};

/// A `--format sql` backup: decompressed into psql, as a user would without pgward, but
/// never trusted as a script:
///
/// - psql runs it as one transaction (`--single-transaction -f -`, `ON_ERROR_STOP`), in
///   psql's restricted mode (`\restrict` with a key of our own as its first line), so no
///   meta-command (`\!`, `\o`, `\copy`, `\connect`...) runs, wherever it sits in a line;
/// - every line that begins with a backslash outside COPY data is checked before psql sees
///   it: pg_dump's own `\restrict`/`\unrestrict` are dropped (the restriction is ours),
///   and anything else stops the load with [`Error::UnsafeSqlBackup`];
/// - the stored bytes are hashed as they stream, and psql's input is closed (which commits)
///   only once size and SHA-256 match the manifest: on a mismatch, a refused line or a
///   decompression error, psql is killed before it reads the end of its input, so its
///   transaction is never committed.
pub(super) fn load_sql(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    target: &ConnectionSettings,
) -> Result<LoadReport> {
    let t = Instant::now();
    let entry = manifest.file(SQL_FILE).ok_or_else(|| {
        crate::archive::verify::corrupt(&manifest.id, SQL_FILE, "not in the manifest")
    })?;
    let psql = pgtools::version("psql")?;
    if !psql.has_restricted_mode() {
        return Err(Error::ExternalTool {
            tool: "psql".into(),
            reason: format!("{} has no restricted mode (\\restrict), so it would obey any meta-command a SQL backup holds", psql.text),
            hint: format!("install a newer PostgreSQL client (13.22, 14.19, 15.14, 16.10, 17.6 or later) and put it first on PATH, or set {}", pgtools::BINDIR_ENV),
        });
    }
    let mut cmd = pgtools::command("psql", target);
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "--no-password",
        "--single-transaction",
    ])
    .arg(libpq_dbname_arg(&target.dbname))
    .args(["-f", "-"])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| pgtools::not_started("psql", e))?;
    let stderr_reader = pgtools::stderr_reader(&mut child);
    let fed = match child.stdin.take() {
        Some(mut stdin) => {
            let fed = feed_sql(storage, manifest, entry, &mut stdin);
            if fed.is_err() {
                // Killed while its input is still open: psql never reads the end of the
                // file, so its one transaction never commits.
                let _ = child.kill();
            }
            // The end of psql's input, only now.
            drop(stdin);
            fed
        }
        None => Err(SqlFeed::Psql(std::io::Error::other("no stdin"))),
    };
    let status = child.wait().map_err(|e| Error::io("wait for", "psql", e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    match fed {
        Err(SqlFeed::Refused(e)) => return Err(e),
        // psql stopped reading: its own error says why.
        Err(SqlFeed::Psql(write)) => {
            pgtools::check_status("psql", status, &stderr)?;
            return Err(Error::io("write to", "psql", write));
        }
        Ok(()) => pgtools::check_status("psql", status, &stderr)?,
    }
    let large_objects = large_objects::check_count(
        &mut connect(target, APP)?,
        large_objects::to_restore(manifest, false),
    )?;
    Ok(LoadReport {
        tables: Vec::new(),
        pre_data_s: 0.0,
        data_s: since(t),
        post_data_early_items: 0,
        post_data_s: 0.0,
        verify_and_analyze_s: 0.0,
        large_objects,
    })
}

/// Why feeding psql stopped.
enum SqlFeed {
    /// The backup: a refused line, a mismatch, a decompression or storage error.
    Refused(Error),
    /// psql stopped reading its input.
    Psql(std::io::Error),
}

/// Streams `entry` of the backup into psql's `stdin` through [`SqlGuard`]; `Ok` only when
/// every byte matched the manifest. The caller closes psql's input (psql then commits),
/// and on an error kills psql first, its input still open.
fn feed_sql(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    entry: &ManifestFile,
    stdin: &mut std::process::ChildStdin,
) -> std::result::Result<(), SqlFeed> {
    let refused = SqlFeed::Refused;
    let mut stored = HashingReader::new(storage.open(&manifest.id, SQL_FILE).map_err(refused)?);
    let plain = crate::archive::crypt::plain(manifest, SQL_FILE, &mut stored).map_err(refused)?;
    let decode_error = |e: std::io::Error| {
        SqlFeed::Refused(crate::archive::verify::corrupt(
            &manifest.id,
            SQL_FILE,
            &format!("does not decompress: {e}"),
        ))
    };
    let mut decoder = std::io::BufReader::with_capacity(
        1 << 20,
        zstd::Decoder::new(plain).map_err(decode_error)?,
    );
    let key = restrict_key();
    stdin
        .write_all(format!("\\restrict {key}\n").as_bytes())
        .map_err(SqlFeed::Psql)?;
    let mut guard = SqlGuard::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n =
            std::io::BufRead::read_until(&mut decoder, b'\n', &mut line).map_err(decode_error)?;
        if n == 0 {
            break;
        }
        match guard.check(&line) {
            Ok(true) => stdin.write_all(&line).map_err(SqlFeed::Psql)?,
            Ok(false) => {}
            Err(text) => {
                return Err(SqlFeed::Refused(Error::UnsafeSqlBackup {
                    id: manifest.id.clone(),
                    file: SQL_FILE.into(),
                    line: guard.line,
                    text,
                }))
            }
        }
    }
    drop(decoder);
    let (size, sha256) = stored
        .finish()
        .map_err(|e| SqlFeed::Refused(Error::io("read", SQL_FILE, e)))?;
    if let Some(problem) = crate::archive::verify::mismatch(entry, size, &sha256) {
        return Err(SqlFeed::Refused(crate::archive::verify::corrupt(
            &manifest.id,
            SQL_FILE,
            &problem,
        )));
    }
    // The caller closes psql's input, which lets it reach the end and commit.
    Ok(())
}

/// A fresh key for psql's restricted mode: random, so that nothing in the backup can
/// name it in an `\unrestrict`.
fn restrict_key() -> String {
    let mut bytes = [0u8; 24];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            ^ u128::from(std::process::id());
        bytes[..16].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
