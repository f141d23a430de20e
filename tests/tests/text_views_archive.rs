//! The `--format text` views of pgward-backup (its dry run, `list`, `verify`, `verify
//! --deep`, `prune`) and pgward-restore, success and failure, as insta snapshots: the real
//! binaries against a database of the harness's cluster and a local backup folder, stdout
//! piped (so no colour). Only what varies from run to run is filtered
//! ([`pgward_tests::TEXT_FILTERS`]); the alignment the filters blur is asserted on the
//! unfiltered text. And colour: in a table view on a terminal, never with `NO_COLOR` or on
//! a pipe.

use std::path::Path;

use pgward_tests::{
    cluster, on_a_terminal_ok, path_str, redact_temp_paths, run, temp_dir, text_view, Output,
    TestDb, TEXT_FILTERS,
};

/// A database of twelve tables (`public.t01` .. `public.t12`, table N with N × 250 rows),
/// so a per-table summary shows its top ten and counts the rest.
fn twelve_tables() -> TestDb<'static> {
    let db = cluster().create_database();
    let mut sql = String::new();
    for n in 1..=12 {
        sql.push_str(&format!(
            "CREATE TABLE public.t{n:02} (id integer PRIMARY KEY, note text NOT NULL);
             INSERT INTO public.t{n:02} SELECT i, 'row ' || i FROM generate_series(1, {}) AS i;",
            n * 250
        ));
    }
    db.psql(&sql);
    db
}

/// `pgward-TOOL ARGS... --format text` with the cluster's PostgreSQL tools.
fn text(tool: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--format", "text"]);
    run(tool, &all, &cluster().pg_tools_env())
}

/// Asserts `out` ended with `code`, snapshots its text view as `name`, and returns the
/// view as printed (temp paths redacted), for the assertions the snapshot's filters blur.
macro_rules! snapshot {
    ($name:expr, $out:expr, $code:expr) => {{
        let out: &Output = &$out;
        out.assert_code($code);
        insta::with_settings!({filters => TEXT_FILTERS.to_vec()}, {
            insta::assert_snapshot!($name, text_view(out));
        });
        redact_temp_paths(&out.stdout)
    }};
}

/// The lines of the table whose header line starts (after its indent) with `first`, up to
/// the first line that is not indented; the header's underline excluded.
fn table<'t>(view: &'t str, first: &str) -> Vec<&'t str> {
    let lines: Vec<&str> = view.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with(first) && l.starts_with("  "))
        .unwrap_or_else(|| panic!("no table headed {first:?} in\n{view}"));
    let mut rows = vec![lines[start]];
    rows.extend(
        lines[start + 2..]
            .iter()
            .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with('…')),
    );
    rows
}

/// Asserts every line of a table ends in the same column (its last column holds numbers,
/// right-aligned) and its header is underlined as wide.
fn assert_right_aligned(view: &str, first: &str) {
    let rows = table(view, first);
    assert!(rows.len() > 1, "{first}: no rows in\n{view}");
    let width = rows[0].chars().count();
    for row in &rows {
        assert_eq!(
            row.chars().count(),
            width,
            "{row:?} is not aligned in\n{view}"
        );
    }
}

/// The id of the newest backup in `dir`.
fn backup_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .expect("the backup folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| dir.join(name).join("manifest.json").exists())
        .collect();
    ids.sort();
    ids
}

#[test]
fn backup_list_verify_restore_and_prune_have_designed_text_views() {
    let db = twelve_tables();
    let url = db.url();
    let folder = temp_dir("text_views_");
    let to = path_str(folder.path());
    let shown = redact_temp_paths(to);

    let view = snapshot!(
        "backup_dry_run",
        text("backup", &["--to", to, "--database-url", &url, "--dry-run"]),
        0
    );
    assert!(view.contains("… and 2 more tables"), "{view}");
    assert_right_aligned(&view, "table");

    let view = snapshot!(
        "backup",
        text("backup", &["--to", to, "--database-url", &url]),
        0
    );
    let id = backup_ids(folder.path())
        .pop()
        .expect("a backup was written");
    assert!(
        view.starts_with(&format!("Backup {id} written\n")),
        "{view}"
    );
    assert!(
        view.contains(&format!("pgward-backup verify {id} --from {shown}"))
            && view.contains(&format!("pgward-restore --from {shown}/{id} ")),
        "the next commands name the backup:\n{view}"
    );
    // Largest first: t12 (3,000 rows) heads the table, t01 and t02 are counted below it.
    let rows = table(&view, "table");
    assert!(rows[1].trim_start().starts_with("public.t12"), "{view}");
    assert!(rows.iter().all(|r| !r.contains("public.t01 ")), "{view}");
    assert!(view.contains("… and 2 more tables (750 rows, "), "{view}");
    assert_right_aligned(&view, "table");

    let view = snapshot!("list", text("backup", &["list", "--from", to]), 0);
    assert!(view.contains(&id), "{view}");

    let view = snapshot!("verify", text("backup", &["verify", &id, "--from", to]), 0);
    assert!(
        view.contains(&format!("pgward-restore --from LOCATION/{id}")),
        "{view}"
    );

    let view = snapshot!(
        "verify_deep",
        text(
            "backup",
            &[
                "verify",
                &id,
                "--from",
                to,
                "--deep",
                "--database-url",
                &url
            ]
        ),
        0
    );
    assert!(view.contains("row counts match"), "{view}");
    assert_right_aligned(&view, "table");

    let target = cluster().vacant_database();
    let from = format!("{to}/{id}");
    let target_url = cluster().url(&target.name);
    let view = snapshot!(
        "restore",
        text(
            "restore",
            &["--from", &from, "--database-url", &target_url, "--create"]
        ),
        0
    );
    assert!(view.contains("(created)"), "{view}");
    assert!(view.contains(" rows/s)"), "{view}");
    assert_right_aligned(&view, "table");

    // Two more backups: prune --keep-last 1 keeps the newest and the verified first one,
    // and removes the one between them.
    for _ in 0..2 {
        text("backup", &["--to", to, "--database-url", &url]).assert_code(0);
    }
    let ids = backup_ids(folder.path());
    assert_eq!(ids.len(), 3, "{ids:?}");
    let view = snapshot!(
        "prune_dry_run",
        text(
            "backup",
            &["prune", "--from", to, "--keep-last", "1", "--dry-run"]
        ),
        0
    );
    let removed = table(&view, "id")
        .into_iter()
        .find(|row| row.contains("would be removed"))
        .unwrap_or_else(|| panic!("nothing would be removed:\n{view}"));
    assert!(removed.contains(&ids[1]), "{view}");
    let view = snapshot!(
        "prune",
        text("backup", &["prune", "--from", to, "--keep-last", "1"]),
        0
    );
    assert!(view.starts_with("Pruned 1 backup, kept 2\n"), "{view}");
    assert_eq!(
        backup_ids(folder.path()),
        vec![ids[0].clone(), ids[2].clone()]
    );
}

#[test]
fn failed_backups_verifies_and_restores_show_the_error_and_its_hint() {
    let db = twelve_tables();
    let url = db.url();
    let folder = temp_dir("text_views_fail_");
    let to = path_str(folder.path());

    // A location that is a file: a storage error before anything is written.
    let file = folder.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("a file");
    let view = snapshot!(
        "backup_failed",
        text("backup", &["--to", path_str(&file), "--database-url", &url]),
        7
    );
    assert!(
        view.contains("error[") && view.contains("\n  = hint: "),
        "{view}"
    );

    text("backup", &["--to", to, "--database-url", &url]).assert_code(0);
    let id = backup_ids(folder.path()).pop().expect("a backup");

    // No such backup: no result, the error alone.
    let view = snapshot!(
        "verify_unknown",
        text(
            "backup",
            &["verify", "nosuchdb-20200101T000000Z", "--from", to]
        ),
        2
    );
    assert!(view.contains("error[BACKUP_"), "{view}");

    // list of a location that is a file, and prune without a rule: the error alone.
    let view = snapshot!(
        "list_failed",
        text("backup", &["list", "--from", path_str(&file)]),
        7
    );
    assert!(
        view.contains("error[") && view.contains("= hint: "),
        "{view}"
    );
    let view = snapshot!(
        "prune_without_rules",
        text("backup", &["prune", "--from", to, "--database-url", &url]),
        2
    );
    assert!(
        view.contains("error[USAGE]") && view.contains("--keep-daily"),
        "{view}"
    );
    assert_eq!(
        backup_ids(folder.path()),
        vec![id.clone()],
        "nothing was pruned"
    );

    // A non-empty target without --clean is refused before anything is touched.
    let view = snapshot!(
        "restore_refused",
        text(
            "restore",
            &["--from", &format!("{to}/{id}"), "--database-url", &url]
        ),
        6
    );
    assert!(
        view.contains("error[") && view.contains("--clean"),
        "{view}"
    );

    // A dry run says what would happen and changes nothing.
    let view = snapshot!(
        "restore_dry_run",
        text(
            "restore",
            &[
                "--from",
                &format!("{to}/{id}"),
                "--database-url",
                &url,
                "--clean",
                "--dry-run"
            ]
        ),
        0
    );
    assert!(
        view.starts_with(&format!("Dry run: {id} would be restored into ")),
        "{view}"
    );
    assert_eq!(
        backup_ids(folder.path()),
        vec![id.clone()],
        "a dry run takes no safety backup"
    );

    // With --clean: replaced, after a safety backup that the view names with the command
    // that undoes the restore.
    let view = snapshot!(
        "restore_clean",
        text(
            "restore",
            &[
                "--from",
                &format!("{to}/{id}"),
                "--database-url",
                &url,
                "--clean"
            ]
        ),
        0
    );
    let safety = backup_ids(folder.path())
        .into_iter()
        .find(|other| *other != id)
        .expect("the safety backup");
    assert!(view.contains("(replaced"), "{view}");
    assert!(view.contains(&format!("safety backup  {safety}")), "{view}");
    assert!(
        view.contains(&format!(
            "undo: pgward-restore --from {}/{safety} ",
            redact_temp_paths(to)
        )),
        "{view}"
    );

    // A damaged data file: the files that do not match, then the error.
    let data = folder.path().join(&id).join("data");
    let chunk = std::fs::read_dir(&data)
        .expect("the data folder")
        .map(|e| e.expect("an entry").path())
        .min()
        .expect("a data file");
    let mut bytes = std::fs::read(&chunk).expect("the chunk");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&chunk, bytes).expect("the damaged chunk");
    let view = snapshot!(
        "verify_damaged",
        text("backup", &["verify", &id, "--from", to]),
        5
    );
    assert!(
        view.contains("is damaged") && view.contains("Files that do not match"),
        "{view}"
    );
    assert!(view.contains("error[BACKUP_CORRUPT]"), "{view}");
}

#[test]
fn a_table_view_has_colour_on_a_terminal_and_none_with_no_color_or_on_a_pipe() {
    let db = twelve_tables();
    let folder = temp_dir("text_views_colour_");
    let to = path_str(folder.path());
    text("backup", &["--to", to, "--database-url", &db.url()]).assert_code(0);
    let id = backup_ids(folder.path()).pop().expect("a backup");
    text("backup", &["verify", &id, "--from", to]).assert_code(0);
    let args = ["list", "--from", to, "--format", "text"];

    let terminal = on_a_terminal_ok("backup", &args, &[]);
    // The header bold, the verified backup's row green.
    assert!(
        terminal.contains("\u{1b}[1m"),
        "no bold header on a terminal:\n{terminal}"
    );
    let row = terminal
        .lines()
        .find(|l| l.contains(&id) && l.contains("yes"))
        .unwrap_or_else(|| panic!("no row of {id}:\n{terminal}"));
    assert!(
        row.contains("\u{1b}[32m"),
        "the verified row is not green: {row:?}"
    );

    let no_color = on_a_terminal_ok("backup", &args, &[("NO_COLOR", "1")]);
    assert!(
        !no_color.contains('\u{1b}'),
        "colour despite NO_COLOR:\n{no_color}"
    );
    assert!(no_color.contains(&id), "{no_color}");

    let piped = run("backup", &args, &[]);
    piped.assert_code(0);
    assert!(
        !piped.stdout.contains('\u{1b}'),
        "colour on a pipe:\n{piped}"
    );
    assert!(piped.stdout.contains(&id), "{piped}");
}
