//! `pgward-migrate seed`: run seed SQL files in order, each in one transaction (with the
//! migration engine's rules); never in a protected environment.

use std::path::{Path, PathBuf};

use pgward_shared::codes::ErrorCode;
use pgward_shared::error::{Error, Result};
use pgward_shared::log;
use pgward_shared::migrations::{prisma_collator, prisma_order};
use pgward_shared::output::{Context, Failure, Outcome};

use pgward_shared::migrations::engine::{elapsed_ms, run_script, Bookkeeping, ScriptPlan, Watch};
use pgward_shared::migrations::results::{SeedResult, SeededFile};

/// The seeds folder: `--dir`, else `prisma/seeds/<env>` with an environment, else
/// `prisma/seeds`.
pub fn default_seeds_dir(env: Option<&str>) -> PathBuf {
    match env {
        Some(env) => PathBuf::from("prisma/seeds").join(env),
        None => PathBuf::from("prisma/seeds"),
    }
}

/// Runs seed.
pub fn seed(ctx: &Context, dir: &Path, dry_run: bool) -> Result<Outcome, Failure> {
    let db = ctx.database()?;
    if !dry_run {
        ctx.audit(&db);
    }
    ctx.settings.refuse_if_protected("seed")?;
    let files = seed_files(dir)?;
    let mut session = ctx.connect()?;
    let mut result = SeedResult {
        seeds_dir: dir.display().to_string(),
        dry_run,
        files: Vec::new(),
    };
    // How the session reads the text sent, looked at from file to file.
    let mut watch = Watch::session();
    for path in files {
        let raw = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let text = std::str::from_utf8(&raw).map_err(|e| Error::NotUtf8 {
            path: path.clone(),
            offset: e.valid_up_to(),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let plan = ScriptPlan::new(text);
        let file = path.display().to_string();
        if dry_run {
            result.files.push(SeededFile {
                file,
                statements: plan.statements.len(),
                mode: plan.mode,
                duration_ms: None,
            });
            continue;
        }
        log::info(&format!("seeding {file}"));
        let started = std::time::Instant::now();
        match run_script(
            &mut session.client,
            text,
            &plan,
            &Bookkeeping::default(),
            &mut watch,
        ) {
            Ok(done) => result.files.push(SeededFile {
                file,
                mode: done.mode,
                statements: done.statements,
                duration_ms: Some(elapsed_ms(started)),
            }),
            Err(f) => {
                let hint = if f.partly_committed() {
                    "the failing file committed part of its work before the failure (its own COMMIT), and that part stays; earlier files stay seeded. Check what it left, fix the file and seed again"
                } else {
                    "the failing file's transaction was rolled back; earlier files stay seeded. Fix the file and seed again"
                };
                let error = f.into_error(
                    ErrorCode::SeedFailed,
                    format!("seed file {file}"),
                    hint.into(),
                );
                return Err(Failure::with_result(error, &result));
            }
        }
    }
    Ok(Outcome::ok(result))
}

fn seed_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::usage(
            format!("the seeds folder {} does not exist", dir.display()),
            "pass the folder with --dir, or create prisma/seeds/<env>/ with numbered .sql files",
        ),
        _ => Error::io("read", dir, e),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
        .collect();
    let collator = prisma_collator();
    files.sort_by(|a, b| {
        prisma_order(
            &collator,
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    if files.is_empty() {
        return Err(Error::usage(
            format!("the seeds folder {} holds no .sql file", dir.display()),
            "add seed files such as 01_users.sql; they run in name order",
        ));
    }
    Ok(files)
}
