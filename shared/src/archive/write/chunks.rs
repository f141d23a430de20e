//! Cutting tables into chunks: ctid ranges of about `--chunk-bytes`, each read by one
//! worker with its own COPY, so that one huge table is read by every worker.

use crate::archive::manifest::CopyFormat;
use crate::archive::write::snapshot::TableInfo;

/// One unit of work: a ctid range of a table.
pub(super) struct ChunkPlan {
    /// Index of its table.
    pub(super) table: usize,
    pub(super) format: CopyFormat,
    /// Its place in the table.
    pub(super) index: usize,
    pub(super) first_page: u64,
    /// None for the table's last, open-ended range.
    pub(super) end_page: Option<u64>,
    /// The file it is stored as.
    pub(super) file: String,
    /// The COPY that reads it.
    pub(super) sql: String,
    /// Its size as planned.
    pub(super) bytes: u64,
}

/// Cuts tables into ctid ranges of about `chunk_bytes`; the last range of each table is
/// open-ended so rows on pages beyond the size read at planning time are not missed.
pub(super) fn plan_chunks(
    tables: &[TableInfo],
    chunk_bytes: u64,
    block_size: u64,
) -> Vec<ChunkPlan> {
    let chunk_pages = (chunk_bytes / block_size.max(1)).max(1);
    let mut plans = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let columns = t.columns.join(", ");
        let pages = t.bytes.div_ceil(block_size.max(1));
        // An extension's configuration table is read whole through its filter.
        let count = if t.extension_filter.is_some() {
            1
        } else {
            pages.div_ceil(chunk_pages).max(1)
        };
        for ci in 0..count {
            let first = ci * chunk_pages;
            let end = (ci + 1 < count).then_some((ci + 1) * chunk_pages);
            let options = t.copy_format.copy_options(&[]);
            let sql = if let Some(filter) = &t.extension_filter {
                format!(
                    "COPY (SELECT {columns} FROM ONLY {} {filter}) TO STDOUT{options}",
                    t.qualified()
                )
            } else if count == 1 {
                // A table without columns still has rows: `COPY t TO STDOUT` writes an
                // empty line for each (`COPY t () ...` is a syntax error).
                let list = if columns.is_empty() {
                    String::new()
                } else {
                    format!(" ({columns})")
                };
                format!("COPY {}{list} TO STDOUT{options}", t.qualified())
            } else {
                let upper = end
                    .map(|e| format!(" AND ctid < '({e},0)'::tid"))
                    .unwrap_or_default();
                format!(
                    "COPY (SELECT {columns} FROM ONLY {} WHERE ctid >= '({first},0)'::tid{upper}) TO STDOUT{options}",
                    t.qualified()
                )
            };
            let bytes = end
                .map(|e| (e - first) * block_size)
                .unwrap_or_else(|| t.bytes.saturating_sub(first * block_size));
            plans.push(ChunkPlan {
                table: ti,
                format: t.copy_format,
                index: ci as usize,
                first_page: first,
                end_page: end,
                file: format!("data/t{ti:05}.{ci:05}.copy.zst"),
                sql,
                bytes,
            });
        }
    }
    // Largest first keeps every worker busy to the end.
    plans.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.table.cmp(&b.table))
            .then(a.index.cmp(&b.index))
    });
    plans
}
