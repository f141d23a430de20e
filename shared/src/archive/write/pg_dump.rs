//! pg_dump on the backup's snapshot: the schema archive, the large objects, or the whole
//! database in the sql format, streamed into a backup file.

use std::process::Stdio;
use std::time::Duration;

use crate::archive::manifest::ManifestFile;
use crate::archive::write::compression::compression_parameters;
use crate::connect::dburl::ConnectionSettings;
use crate::error::{Error, Result};
use crate::pgtools;
use crate::storage::{write_error, BackupWriter, FileWriter};

/// Runs pg_dump on the snapshot and stores its output as `path` (zstd-compressed when
/// `level` is given).
pub(super) fn run_pg_dump(
    db: &ConnectionSettings,
    snapshot_id: &str,
    writer: &dyn BackupWriter,
    path: &str,
    args: &[&str],
    level: Option<i32>,
    lock_timeout: Duration,
) -> Result<ManifestFile> {
    let mut cmd = pgtools::command("pg_dump", db);
    cmd.args(args)
        .arg(format!("--snapshot={snapshot_id}"))
        .arg(format!(
            "--lock-wait-timeout={}",
            lock_timeout.as_millis().max(1)
        ))
        .arg("--no-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| pgtools::not_started("pg_dump", e))?;
    let end_on_interrupt = pgtools::EndOnInterrupt::new(&child);
    let stderr_reader = pgtools::stderr_reader(&mut child);
    let mut stdout = child.stdout.take().ok_or_else(|| Error::ExternalTool {
        tool: "pg_dump".into(),
        reason: "no output pipe".into(),
        hint: "report this as a bug".into(),
    })?;
    let file = writer.create(path)?;
    let copy_result: Result<FileWriter> = match level {
        Some(level) => (|| {
            let mut encoder = zstd::Encoder::new(file, level).map_err(|e| write_error(path, e))?;
            for parameter in compression_parameters(level) {
                encoder
                    .set_parameter(parameter)
                    .map_err(|e| write_error(path, e))?;
            }
            std::io::copy(&mut pgtools::Interruptible(&mut stdout), &mut encoder)
                .map_err(|e| write_error(path, e))?;
            encoder.finish().map_err(|e| write_error(path, e))
        })(),
        None => {
            let mut file = file;
            std::io::copy(&mut pgtools::Interruptible(&mut stdout), &mut file)
                .map(|_| file)
                .map_err(|e| write_error(path, e))
        }
    };
    if copy_result.is_err() {
        let _ = child.kill();
    }
    let status = end_on_interrupt
        .wait(&mut child)
        .map_err(|e| Error::io("wait for", "pg_dump", e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    let file = copy_result?;
    pgtools::check_status("pg_dump", status, &stderr)?;
    file.finish()
}
