//! The text views of the backup commands — `pgward-backup` (and its `--dry-run`), `list`,
//! `verify` (`--deep` too), `copy`, `prune` — and of `pgward-restore`: what, where, how big, how
//! long, the largest tables, and the command to run next. Each reads its command's typed
//! result; a result that does not read gives `None` (the generic summary shows it).

use super::lines::{and_more, count, fields, next_steps, plural, section, title, view, when, TOP};
use super::table::{Align, Mark, TextTable};
use super::TextStyle;
use crate::archive::inventory::{ListResult, ListedBackup};
use crate::archive::load::LoadReport;
use crate::archive::prune::PruneResult;
use crate::archive::results::{BackupPlan, CopyResult, RestoreResult, VerifyResult};
use crate::archive::verify::Depth;
use crate::archive::write::DumpResult;
use crate::output::Envelope;
use crate::render::human::{bytes, seconds};
use crate::storage::BackupCopy;

/// `pgward-backup` (`backup`): the backup written, or with `--dry-run` what it would hold.
pub(super) fn backup(e: &Envelope, style: TextStyle) -> Option<String> {
    if e.result.get("dry_run").is_some() {
        return view(e, style, "backup", backup_plan);
    }
    view(e, style, "backup", backup_written)
}

fn database(e: &Envelope) -> Option<(&'static str, String)> {
    super::lines::database(e).map(|at| ("database", at))
}

fn rate(amount: f64, duration_ms: u64) -> Option<f64> {
    (duration_ms > 0).then(|| amount / (duration_ms as f64 / 1000.0))
}

fn backup_written(r: &DumpResult, e: &Envelope, style: TextStyle) -> String {
    let mut out = title(style, &format!("Backup {} written", r.id));
    let mut pairs = vec![("location", r.location.clone())];
    pairs.extend(database(e));
    pairs.push(("snapshot", when(&r.snapshot_time)));
    pairs.push((
        "migration",
        r.migration_head
            .clone()
            .unwrap_or_else(|| "none applied".into()),
    ));
    pairs.push((
        "size",
        format!(
            "{} in {} ({} format)",
            bytes(r.size_bytes as f64),
            plural(r.files as u64, "file"),
            serde_json::to_value(r.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
    ));
    pairs.push((
        "contents",
        format!(
            "{} in {}",
            plural(r.rows, "row"),
            plural(r.tables.len() as u64, "table")
        ),
    ));
    pairs.push((
        "large objects",
        large_objects(r.large_objects.count, r.large_objects.excluded),
    ));
    pairs.push(("took", took(e.duration_ms, Some(r.size_bytes as f64), None)));
    out.push_str(&fields(&pairs));
    let mut tables: Vec<_> = r.tables.iter().collect();
    tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.table.cmp(&b.table)));
    if !tables.is_empty() {
        out.push_str(&section(style, "Largest tables"));
        let mut t = TextTable::new(&[
            ("table", Align::Left),
            ("rows", Align::Right),
            ("chunks", Align::Right),
            ("size", Align::Right),
        ]);
        for table in tables.iter().take(TOP) {
            t.row(
                [
                    table.table.clone(),
                    count(table.rows),
                    count(table.chunks as u64),
                    bytes(table.bytes as f64),
                ],
                Mark::Plain,
            );
        }
        out.push_str(&t.render(style));
        out.push_str(&more(tables.iter().skip(TOP).map(|t| (t.rows, t.bytes))));
    }
    if r.copies.len() > 1 {
        out.push_str(&section(style, "Copies"));
        out.push_str(&copies_table(&r.copies, style));
    }
    if e.ok {
        let path = format!("{}/{}", r.location.trim_end_matches('/'), r.id);
        let locations: Vec<&str> = if r.copies.len() > 1 {
            r.copies.iter().map(|c| c.location.as_str()).collect()
        } else {
            vec![r.location.as_str()]
        };
        out.push_str(&next_steps(
            style,
            &[
                format!("pgward-backup verify {}{}", r.id, from_flags(&locations)),
                format!(
                    "pgward-restore --from {path} --target-db {}_check --create",
                    e.target.as_ref().map_or("NAME", |t| t.database.as_str())
                ),
            ],
        ));
    }
    out
}

/// ` --from A --from B`: the flags naming `locations`.
fn from_flags(locations: &[&str]) -> String {
    locations.iter().map(|l| format!(" --from {l}")).collect()
}

/// Each location of a backup: complete or not, how long its copy took, what stopped it.
fn copies_table(copies: &[BackupCopy], style: TextStyle) -> String {
    let mut t = TextTable::new(&[
        ("location", Align::Left),
        ("copy", Align::Left),
        ("took", Align::Right),
    ]);
    for c in copies {
        t.row(
            [
                c.location.clone(),
                match (&c.problem, &c.replaced_damaged) {
                    (None, Some(damage)) => {
                        format!("complete, replacing a damaged copy ({damage})")
                    }
                    (None, None) if c.complete => "complete".into(),
                    (None, None) => "incomplete".into(),
                    // Whole: the error below repeats only the first failure.
                    (Some(problem), _) => format!("FAILED: {problem}"),
                },
                seconds(c.seconds),
            ],
            if c.complete { Mark::Good } else { Mark::Alarm },
        );
    }
    t.render(style)
}

/// `pgward-backup copy`.
pub(super) fn copy(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "backup copy", |r: &CopyResult, e, style| {
        let done = r.copies.iter().filter(|c| c.complete).count();
        let mut out = title(
            style,
            &format!(
                "Backup {}: {} of {} complete",
                r.id,
                done,
                plural(r.copies.len() as u64, "location")
            ),
        );
        out.push_str(&fields(&[
            ("read from", r.from.clone()),
            ("took", took(e.duration_ms, None, None)),
        ]));
        out.push('\n');
        out.push_str(&copies_table(&r.copies, style));
        if e.ok {
            let mut locations = vec![r.from.as_str()];
            locations.extend(r.copies.iter().map(|c| c.location.as_str()));
            out.push_str(&next_steps(
                style,
                &[format!(
                    "pgward-backup verify {}{}",
                    r.id,
                    from_flags(&locations)
                )],
            ));
        }
        out
    })
}

/// `... and 3 more tables (1,200 rows, 3.1 MiB)`, or nothing.
fn more(rest: impl Iterator<Item = (u64, u64)>) -> String {
    let (n, rows, size) = rest.fold((0u64, 0u64, 0u64), |(n, r, s), (rows, size)| {
        (n + 1, r + rows, s + size)
    });
    if n == 0 {
        String::new()
    } else {
        and_more(
            n,
            "table",
            &format!("{}, {}", plural(rows, "row"), bytes(size as f64)),
        )
    }
}

fn large_objects(n: u64, excluded: bool) -> String {
    if excluded {
        format!("{} left out (--no-large-objects)", count(n))
    } else {
        count(n)
    }
}

/// `2.3 s (12.0 MiB/s)` or `2.3 s (5,000 rows/s)`.
fn took(duration_ms: u64, size: Option<f64>, rows: Option<u64>) -> String {
    let d = seconds(duration_ms as f64 / 1000.0);
    if let Some(per_s) = size.and_then(|s| rate(s, duration_ms)) {
        format!("{d} ({}/s)", bytes(per_s))
    } else if let Some(per_s) = rows.and_then(|r| rate(r as f64, duration_ms)) {
        format!("{d} ({} rows/s)", count(per_s.round() as u64))
    } else {
        d
    }
}

fn backup_plan(r: &BackupPlan, e: &Envelope, style: TextStyle) -> String {
    let mut out = title(style, "Dry run: nothing written");
    let mut pairs = vec![("location", r.location.clone())];
    pairs.extend(database(e));
    pairs.push((
        "would hold",
        format!(
            "{} of {} on disk",
            plural(r.tables.len() as u64, "table"),
            bytes(r.bytes as f64)
        ),
    ));
    pairs.push((
        "large objects",
        large_objects(r.large_objects.count, r.large_objects.excluded),
    ));
    out.push_str(&fields(&pairs));
    let mut tables: Vec<_> = r.tables.iter().collect();
    tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.table.cmp(&b.table)));
    if !tables.is_empty() {
        out.push_str(&section(style, "Largest tables"));
        let mut t = TextTable::new(&[("table", Align::Left), ("size on disk", Align::Right)]);
        for table in tables.iter().take(TOP) {
            t.row(
                [table.table.clone(), bytes(table.bytes as f64)],
                Mark::Plain,
            );
        }
        out.push_str(&t.render(style));
        let rest: Vec<_> = tables.iter().skip(TOP).collect();
        if !rest.is_empty() {
            out.push_str(&and_more(
                rest.len() as u64,
                "table",
                &bytes(rest.iter().map(|t| t.bytes as f64).sum()),
            ));
        }
    }
    out.push_str(&next_steps(
        style,
        &[format!("pgward-backup --to {}", r.location)],
    ));
    out
}

/// `pgward-backup list`.
pub(super) fn list(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "backup list", |r: &ListResult, e, style| {
        let total: u64 = r.backups.iter().map(|b| b.entry.size_bytes).sum();
        let mut out = title(
            style,
            &format!(
                "{} in {} ({})",
                plural(r.backups.len() as u64, "backup"),
                r.location,
                bytes(total as f64)
            ),
        );
        let now = chrono::DateTime::parse_from_rfc3339(&e.started_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        if !r.backups.is_empty() {
            let mut t = TextTable::new(&[
                ("id", Align::Left),
                ("taken", Align::Left),
                ("size", Align::Right),
                ("rows", Align::Right),
                ("took", Align::Right),
                ("verified", Align::Left),
                ("age", Align::Right),
                ("label", Align::Left),
            ]);
            let several = several_locations(r.backups.iter(), &r.location);
            for b in &r.backups {
                let age = now
                    .signed_duration_since(b.entry.created_at)
                    .num_milliseconds() as f64
                    / 1000.0;
                let verified = verified_cell(b, several);
                t.row(
                    [
                        b.entry.id.clone(),
                        when(&b.entry.created_at),
                        bytes(b.entry.size_bytes as f64),
                        count(b.rows),
                        seconds(b.duration_s),
                        verified,
                        seconds(age.max(0.0)),
                        b.entry.label.clone().unwrap_or_default(),
                    ],
                    if b.entry.verified {
                        Mark::Good
                    } else {
                        Mark::Plain
                    },
                );
            }
            out.push('\n');
            out.push_str(&t.render(style));
        }
        let mut pairs = Vec::new();
        if !r.running.is_empty() {
            pairs.push(("being written", r.running.join(", ")));
        }
        if !r.incomplete.is_empty() {
            pairs.push(("incomplete", r.incomplete.join(", ")));
        }
        for d in &r.damaged {
            pairs.push(("damaged", format!("{} ({})", d.id, d.problem)));
        }
        if !pairs.is_empty() {
            out.push('\n');
            out.push_str(&fields(&pairs));
        }
        let newest_verified = r.backups.iter().find(|b| b.entry.verified);
        let steps = match (r.backups.first(), newest_verified) {
            (None, _) => vec![format!("pgward-backup --to {}", r.location)],
            (Some(newest), Some(v)) if v.entry.id == newest.entry.id => vec![format!(
                "pgward-restore --from {}/{}",
                r.location.trim_end_matches('/'),
                v.entry.id
            )],
            (Some(newest), _) => {
                let locations: Vec<&str> = if newest.copies.is_empty() {
                    vec![r.location.as_str()]
                } else {
                    newest.copies.iter().map(|c| c.location.as_str()).collect()
                };
                vec![format!(
                    "pgward-backup verify {}{}",
                    newest.entry.id,
                    from_flags(&locations)
                )]
            }
        };
        out.push_str(&next_steps(style, &steps));
        out
    })
}

/// Whether backups live in several locations (or elsewhere than `location`): the
/// listings then say, per backup, which copies there are and which are verified.
pub(super) fn several_locations<'b>(
    mut backups: impl Iterator<Item = &'b ListedBackup>,
    location: &str,
) -> bool {
    backups.any(|b| b.copies.len() > 1 || b.copies.iter().any(|c| c.location != location))
}

/// A listed backup's "verified" cell: yes or no, or with several locations each copy's.
pub(super) fn verified_cell(b: &ListedBackup, several: bool) -> String {
    if !several {
        return yes_no(b.entry.verified).into();
    }
    b.copies
        .iter()
        .map(|c| format!("{} in {}", yes_no(c.verified), c.location))
        .collect::<Vec<_>>()
        .join("; ")
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `pgward-backup verify` (`--deep` too).
pub(super) fn verify(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "backup verify", |r: &VerifyResult, e, style| {
        let bad: Vec<_> = r.files.iter().filter(|f| !f.ok).collect();
        let verdict = if !bad.is_empty() {
            "is damaged"
        } else if r.copies.iter().any(|c| !c.verified) {
            "has a copy that failed verification"
        } else {
            "verified"
        };
        let mut out = title(
            style,
            &format!(
                "Backup {} {verdict}{}",
                r.id,
                if r.deep { " (deep)" } else { "" }
            ),
        );
        let mut pairs = vec![(
            "files",
            if bad.is_empty() {
                format!(
                    "{} checked, every size and SHA-256 matches",
                    count(r.files.len() as u64)
                )
            } else {
                format!(
                    "{} of {} do not match",
                    count(bad.len() as u64),
                    count(r.files.len() as u64)
                )
            },
        )];
        pairs.push(("took", took(e.duration_ms, None, None)));
        if let Some(load) = &r.restore {
            pairs.push((
                "scratch restore",
                format!(
                    "{} in {}, row counts {}",
                    plural(load.tables.iter().map(|t| t.rows).sum(), "row"),
                    plural(load.tables.len() as u64, "table"),
                    if load.tables.iter().all(|t| t.rows == t.expected_rows) {
                        "match"
                    } else {
                        "DIFFER"
                    }
                ),
            ));
        } else if r.deep {
            pairs.push(("scratch restore", "not run".into()));
        }
        out.push_str(&fields(&pairs));
        if !bad.is_empty() {
            out.push_str(&section(style, "Files that do not match"));
            let mut t = TextTable::new(&[("file", Align::Left), ("problem", Align::Left)]);
            for f in &bad {
                t.row(
                    [
                        f.path.clone(),
                        super::table::cut(f.problem.as_deref().unwrap_or("-"), 70),
                    ],
                    Mark::Alarm,
                );
            }
            out.push_str(&t.render(style));
        }
        if let Some(load) = &r.restore {
            out.push_str(&load_tables(load, style));
        }
        if r.copies.len() > 1 {
            out.push_str(&section(style, "Copies"));
            let mut t = TextTable::new(&[("location", Align::Left), ("verified", Align::Left)]);
            for c in &r.copies {
                t.row(
                    [
                        c.location.clone(),
                        match &c.problem {
                            None => yes_no(c.verified).into(),
                            Some(problem) => format!("NO: {problem}"),
                        },
                    ],
                    if c.verified { Mark::Good } else { Mark::Alarm },
                );
            }
            out.push_str(&t.render(style));
        }
        if e.ok && bad.is_empty() {
            out.push_str(&next_steps(
                style,
                &[format!(
                    "pgward-restore --from LOCATION/{} --target-db NAME --create",
                    r.id
                )],
            ));
        }
        out
    })
}

/// The largest tables of a load (by rows), with expected rows and time.
fn load_tables(load: &LoadReport, style: TextStyle) -> String {
    let mut tables: Vec<_> = load.tables.iter().collect();
    if tables.is_empty() {
        return String::new();
    }
    tables.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.table.cmp(&b.table)));
    let mut out = section(style, "Largest tables");
    let mut t = TextTable::new(&[
        ("table", Align::Left),
        ("rows", Align::Right),
        ("expected", Align::Right),
        ("load", Align::Right),
    ]);
    for table in tables.iter().take(TOP) {
        t.row(
            [
                table.table.clone(),
                count(table.rows),
                count(table.expected_rows),
                seconds(table.seconds),
            ],
            if table.rows == table.expected_rows {
                Mark::Plain
            } else {
                Mark::Alarm
            },
        );
    }
    out.push_str(&t.render(style));
    let rest: Vec<_> = tables.iter().skip(TOP).collect();
    if !rest.is_empty() {
        out.push_str(&and_more(
            rest.len() as u64,
            "table",
            &plural(rest.iter().map(|t| t.rows).sum(), "row"),
        ));
    }
    out
}

/// `pgward-backup prune`.
pub(super) fn prune(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "backup prune", |r: &PruneResult, _e, style| {
        let gone = r.deleted.len() + r.leftovers_deleted.len();
        let mut out = title(
            style,
            &if r.dry_run {
                format!(
                    "Dry run: prune would remove {} and keep {}",
                    plural(gone as u64, "backup"),
                    r.kept.len()
                )
            } else {
                format!(
                    "Pruned {}, kept {}",
                    plural(gone as u64, "backup"),
                    r.kept.len()
                )
            },
        );
        let removed = if r.dry_run {
            "would be removed"
        } else {
            "removed"
        };
        let mut t = TextTable::new(&[
            ("id", Align::Left),
            ("action", Align::Left),
            ("why", Align::Left),
        ]);
        for id in &r.deleted {
            t.row(
                [id.as_str(), removed, "outside the retention rules"],
                Mark::Warn,
            );
        }
        for id in &r.leftovers_deleted {
            t.row(
                [id.as_str(), removed, "leftover of an interrupted run"],
                Mark::Warn,
            );
        }
        for k in &r.kept {
            t.row([k.id.as_str(), "kept", k.reason.as_str()], Mark::Plain);
        }
        for id in &r.leftovers_running {
            t.row(
                [id.as_str(), "left alone", "still being written"],
                Mark::Plain,
            );
        }
        if gone + r.kept.len() + r.leftovers_running.len() > 0 {
            out.push('\n');
            out.push_str(&t.render(style));
        }
        if r.dry_run && gone > 0 {
            out.push_str(&next_steps(
                style,
                &["the same command without --dry-run removes them".into()],
            ));
        }
        out
    })
}

/// `pgward-restore`.
pub(super) fn restore(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "restore", |r: &RestoreResult, e, style| {
        let head = if !e.ok {
            format!(
                "{} was NOT restored into {} (exit {})",
                r.backup, r.target_db, e.exit_code
            )
        } else if r.dry_run {
            format!(
                "Dry run: {} would be restored into {}",
                r.backup, r.target_db
            )
        } else {
            format!("Restored {} into {}", r.backup, r.target_db)
        };
        let mut out = title(style, &head);
        let mut pairs = vec![("from", r.location.clone())];
        pairs.extend(database(e));
        pairs.push((
            "backup of",
            format!(
                "{}{}{}",
                r.source.database,
                r.source
                    .env
                    .as_deref()
                    .map(|env| format!(" ({env})"))
                    .unwrap_or_default(),
                if r.other_database {
                    ", another database than the target"
                } else {
                    ""
                }
            ),
        ));
        let how = match (r.created, r.replaced, r.dry_run) {
            (true, _, false) => "created",
            (true, _, true) => "would be created",
            (false, true, false) => "replaced, its old contents dropped",
            (false, true, true) => "would be replaced, after a safety backup of it",
            _ if e.ok => "existing, empty",
            _ => "existing",
        };
        pairs.push(("target", format!("{} ({how})", r.target_db)));
        if let Some(safety) = &r.safety_backup {
            pairs.push(("safety backup", safety.clone()));
        }
        pairs.push((
            "checked",
            format!(
                "{} before the target was used ({})",
                plural(r.verified_files as u64, "file"),
                match r.verify_depth {
                    Depth::Decode => "checksums and decompression",
                    Depth::Checksums => "checksums; an earlier verify decompressed them",
                    Depth::WhileLoading => "data files checked as they loaded",
                }
            ),
        ));
        if let Some(load) = &r.load {
            let rows: u64 = load.tables.iter().map(|t| t.rows).sum();
            pairs.push((
                "contents",
                format!(
                    "{} in {}",
                    plural(rows, "row"),
                    plural(load.tables.len() as u64, "table")
                ),
            ));
            if load.large_objects > 0 {
                pairs.push(("large objects", count(load.large_objects)));
            }
            pairs.push(("took", took(e.duration_ms, None, Some(rows))));
            pairs.push((
                "phases",
                format!(
                    "schema {}, data {}, indexes and keys {}, checks and ANALYZE {}",
                    seconds(load.pre_data_s),
                    seconds(load.data_s),
                    seconds(load.post_data_s),
                    seconds(load.verify_and_analyze_s)
                ),
            ));
        } else {
            pairs.push(("took", took(e.duration_ms, None, None)));
        }
        out.push_str(&fields(&pairs));
        if let Some(load) = &r.load {
            out.push_str(&load_tables(load, style));
        }
        let mut steps = Vec::new();
        if r.dry_run && e.ok {
            steps.push("the same command without --dry-run restores it".to_string());
        }
        if let Some(safety) = &r.safety_backup {
            steps.push(format!(
                "undo: pgward-restore --from {}/{safety} --target-db {} --clean",
                r.location.trim_end_matches('/'),
                r.target_db
            ));
        }
        out.push_str(&next_steps(style, &steps));
        out
    })
}
