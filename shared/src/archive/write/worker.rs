//! A backup worker and the chunk it reads: COPY out on its snapshot session, rows counted,
//! frames compressed on a second thread, stored and hashed.

use std::io::Write;

use crate::archive::manifest::{ManifestChunk, ManifestFile};
use crate::archive::write::chunks::ChunkPlan;
use crate::archive::write::compression::compressor;
use crate::archive::write::copy_rows::RowCounter;
use crate::connect::copy::CopySession;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::progress::Progress;
use crate::storage::{write_error, BackupWriter, FileWriter};

/// Rows are gathered into frames of about this many bytes, each compressed whole: one
/// contiguous input keeps zstd on its fast path (a streaming encoder's ring buffer makes
/// it match across two segments, at about half the speed), and concatenated frames are
/// one valid zstd stream for every reader, `zstd -dc` included.
const FRAME_BYTES: usize = 8 << 20;

/// A backup worker: its snapshot session, and the buffers and compressor it reuses from
/// chunk to chunk. Fresh 8 MiB buffers for every chunk left the allocator holding freed
/// ones, so that peak RSS grew with the number of chunks (79 MB against 52 MB on the
/// benchmark); reused, a worker's memory is what one chunk needs.
pub(super) struct Worker {
    session: CopySession,
    /// The frame buffers between reader and compressor, back after each chunk.
    buffers: Vec<Vec<u8>>,
    compressor: zstd::bulk::Compressor<'static>,
    compressed: Vec<u8>,
}

impl Worker {
    pub(super) fn new(session: CopySession, level: i32) -> Result<Self> {
        Ok(Self {
            session,
            buffers: Vec::new(),
            compressor: compressor(level).map_err(|e| write_error("data", e))?,
            compressed: Vec::new(),
        })
    }
}

/// Compresses frames into a chunk's file.
struct FrameWriter<'w> {
    file: FileWriter,
    path: &'w str,
    compressor: &'w mut zstd::bulk::Compressor<'static>,
    compressed: &'w mut Vec<u8>,
    frames: usize,
}

impl FrameWriter<'_> {
    fn frame(&mut self, data: &[u8]) -> Result<()> {
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        self.compressor
            .compress_to_buffer(data, self.compressed)
            .map_err(|e| write_error(self.path, e))?;
        self.file
            .write_all(self.compressed)
            .map_err(|e| write_error(self.path, e))?;
        self.frames += 1;
        Ok(())
    }

    /// Hands back the file; a chunk without rows gets one empty frame, so that every
    /// file is a valid zstd stream.
    fn finish(mut self) -> Result<FileWriter> {
        if self.frames == 0 {
            self.frame(&[])?;
        }
        Ok(self.file)
    }
}

/// Streams one chunk: COPY out, count rows, compress, hash, store. Reading and
/// compressing run on two threads with two frame buffers between them, so the server
/// keeps sending while a frame is compressed.
pub(super) fn dump_chunk(
    worker: &mut Worker,
    plan: &ChunkPlan,
    writer: &dyn BackupWriter,
    progress: &Progress,
) -> Result<(ManifestChunk, ManifestFile)> {
    let Worker {
        session,
        buffers,
        compressor,
        compressed,
    } = worker;
    let mut frames = FrameWriter {
        file: writer.create(&plan.file)?,
        path: &plan.file,
        compressor,
        compressed,
        frames: 0,
    };
    let mut reader = session
        .copy_out(plan.sql.as_str())
        .map_err(|e| Error::query(format!("reading {}", plan.file), &e))?;
    let row_error = |message: String| Error::Query {
        context: format!("reading the rows of {}", plan.file),
        sqlstate: None,
        message,
    };
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    // Two buffers: one filling while the other is compressed. (A failed chunk may have
    // kept one.)
    while buffers.len() < 2 {
        buffers.push(Vec::with_capacity(FRAME_BYTES));
    }
    for buffer in buffers.drain(..) {
        let _ = empty_tx.send(buffer);
    }
    // The reader's last buffer when the stream ends empty-handed.
    let mut spare = None;
    let (read, compressed) = std::thread::scope(|scope| {
        let compressor = scope.spawn(move || {
            for mut buffer in full_rx {
                frames.frame(&buffer)?;
                buffer.clear();
                let _ = empty_tx.send(buffer);
            }
            frames.finish()
        });
        let read = (|| {
            let mut rows = RowCounter::new(plan.format);
            // Stops early only when the compressor has failed; its error then wins.
            let Ok(mut buffer) = empty_rx.recv() else {
                return Ok(rows);
            };
            loop {
                let (mut began, before) = (0, buffer.len());
                let more = reader.fill(&mut buffer, FRAME_BYTES, |piece| {
                    began += rows.feed(piece).map_err(std::io::Error::other)?;
                    Ok(())
                });
                progress.add_rows(began);
                progress.add_bytes((buffer.len() - before) as u64);
                match more {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) if interrupt::requested() => return Err(Error::Interrupted),
                    Err(e) => return Err(row_error(e.to_string())),
                }
                if full_tx.send(buffer).is_err() {
                    return Ok(rows);
                }
                let Ok(next) = empty_rx.recv() else {
                    return Ok(rows);
                };
                buffer = next;
            }
            if buffer.is_empty() {
                spare = Some(buffer);
            } else {
                let _ = full_tx.send(buffer);
            }
            Ok(rows)
        })();
        drop(full_tx);
        let compressed = compressor.join().unwrap_or_else(|_| {
            Err(write_error(
                &plan.file,
                std::io::Error::other("the compressing thread panicked"),
            ))
        });
        (read, compressed)
    });
    drop(reader);
    buffers.extend(spare);
    buffers.extend(empty_rx.try_iter());
    // A failed compressor (a full disk, a lost S3 connection) stops the reader early, so
    // its error is the cause; a failed read never fails the compressor.
    let file = compressed?;
    let rows = read?.finish().map_err(row_error)?;
    let entry = file.finish()?;
    Ok((
        ManifestChunk {
            file: plan.file.clone(),
            rows,
            first_page: plan.first_page,
            end_page: plan.end_page,
        },
        entry,
    ))
}
