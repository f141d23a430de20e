//! `pgward-validate lint`: static rules on migration SQL, read with PostgreSQL's own parser
//! before the SQL reaches a database.
//!
//! Which files: the pending migrations of the folder (the database is asked which ones
//! are applied), every migration with `--all` (no database), or the files named. Files are
//! linted in migration order and earlier files teach a small catalog what they built
//! (`catalog.rs`), so a rule can tell a free `varchar` widening from a table rewrite; in
//! the default mode the applied migrations are read for that too, without being reported.
//!
//! Parsing is the expensive part and files are independent, so they are parsed in
//! parallel; the rules then run in order. The findings are suppressed per statement with
//! `-- pgward-ignore rule-id` or everywhere with `[lint] ignore` in pgward.toml.

mod catalog;
mod checks;
pub mod locks;
mod rules;
mod source;
pub mod trace;
mod types;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use pgward_shared::cli::{MigrationsDir, ShadowUrl, STRICT_HELP};
use pgward_shared::codes::WarningCode;
use pgward_shared::error::Error;
use pgward_shared::migrations::history;
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::{LocalMigration, MigrationsFolder, MIGRATION_FILE};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::sql::{self, position_of};
use rayon::prelude::*;

use pgward_shared::findings::LintResult;
use pgward_shared::findings::Totals;
use pgward_shared::findings::{Finding, Location, Span};
pub use rules::{Rule, RuleInfo};
use source::ParsedFile;

/// lint's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct LintOptions {
    /// Migration files to lint [default: the pending migrations]
    pub files: Vec<PathBuf>,
    /// Lint every migration of the folder (no database needed)
    #[arg(long, conflicts_with = "files")]
    pub all: bool,
    // The migrations folder.
    #[command(flatten)]
    pub dir: MigrationsDir,
    // Warnings fail the run (exit 3).
    #[arg(long, help = STRICT_HELP)]
    pub strict: bool,
    /// Also run the files on a throwaway shadow database, traced: mark each finding
    /// confirmed or not, and add what the rules missed (trace-unpredicted). Needs a
    /// database; nothing runs in the target
    #[arg(long)]
    pub trace: bool,
    // The shadow database of --trace.
    #[command(flatten)]
    pub shadow: ShadowUrl,
    /// The PostgreSQL major the migrations will run on, for the rules whose danger depends
    /// on it (a constant default rewrites before 11, SET NOT NULL scans despite a valid
    /// check before 12, NOT NULL ... NOT VALID from 18) [default: the database's in the
    /// default mode; else the supported majors, 14 and later]
    #[arg(long, value_name = "MAJOR", value_parser = clap::value_parser!(u32).range(9..=99))]
    pub pg_version: Option<u32>,
}

/// One SQL text to lint.
#[derive(Debug, Clone)]
pub struct LintSource {
    /// How findings name the file.
    pub path: String,
    /// The SQL, without a byte-order mark.
    pub text: String,
    /// Whether its findings are reported: false for an applied migration, read only so that
    /// later files know what it built.
    pub report: bool,
}

/// Runs lint.
pub fn run(ctx: &Context, options: &LintOptions) -> Result<Outcome, Failure> {
    if options.shadow.shadow_url.is_some() && !options.trace {
        return Err(Error::usage(
            "--shadow-url is the shadow database of --trace, which was not given",
            "add --trace to run the files on that database, or drop --shadow-url",
        )
        .into());
    }
    let (sources, server_major) = if !options.files.is_empty() {
        (read_files(&options.files)?, None)
    } else if options.all {
        let folder = MigrationsFolder::read_non_empty(&options.dir.resolve(&ctx.settings))?;
        (migration_sources(&folder, |_| true)?, None)
    } else {
        let (sources, major) = pending_sources(ctx, &options.dir.resolve(&ctx.settings))?;
        (sources, Some(major))
    };
    let pg_version = options.pg_version.or(server_major);
    let mut ignore = HashSet::new();
    for id in &ctx.settings.config.lint.ignore {
        match Rule::from_id(id) {
            Some(rule) => {
                ignore.insert(rule);
            }
            None => ctx.warn(
                WarningCode::UnknownLintRule,
                format!("[lint] ignore names `{id}`, which is no lint rule"),
            ),
        }
    }
    let (mut result, notes) = lint_sources_for(&sources, &ignore, pg_version);
    for note in notes {
        ctx.warn(WarningCode::UnknownLintRule, note);
    }
    if options.trace {
        let shadow_url = options.shadow.shadow_url.as_deref();
        if let Err(e) = trace::trace(ctx, &sources, shadow_url, &mut result) {
            return Err(Failure::with_result(e, &result));
        }
    }
    crate::schema::finish("lint", result.totals, options.strict, result)
}

/// Lints `sources` in order, never reporting the rules in `ignore`. Returns the result and
/// a note for every `-- pgward-ignore` naming an unknown rule.
pub fn lint_sources(sources: &[LintSource], ignore: &HashSet<Rule>) -> (LintResult, Vec<String>) {
    lint_sources_for(sources, ignore, None)
}

/// [`lint_sources`] for PostgreSQL `pg_version` (its rules whose danger depends on the
/// major judge for it; `None`: the supported majors).
pub fn lint_sources_for(
    sources: &[LintSource],
    ignore: &HashSet<Rule>,
    pg_version: Option<u32>,
) -> (LintResult, Vec<String>) {
    let parsed: Vec<Result<ParsedFile, source::ParseFailure>> = sources
        .par_iter()
        .map(|s| ParsedFile::parse(&s.text))
        .collect();
    let mut catalog = catalog::Catalog::default();
    catalog.pg_version = pg_version;
    let mut result = LintResult {
        pg_version,
        ..Default::default()
    };
    let mut notes = Vec::new();
    for (source, parsed) in sources.iter().zip(&parsed) {
        let file = match parsed {
            Ok(file) => file,
            Err(failure) => {
                if source.report {
                    result.files += 1;
                    if ignore.contains(&Rule::ParseError) {
                        result.suppressed += 1;
                    } else {
                        result
                            .findings
                            .push(checks::parse_error::finding(source, failure));
                    }
                }
                continue;
            }
        };
        let hits = checks::lint_file(&source.text, file, &mut catalog);
        if !source.report {
            continue;
        }
        result.files += 1;
        result.statements += file.statements.len();
        let mut ignored_here: HashMap<usize, HashSet<&str>> = HashMap::new();
        for (statement, comment) in file.ignored_rules(&source.text) {
            let line = position_of(&source.text, comment.offset).line;
            if comment.rules.is_empty() {
                notes.push(format!(
                    "{}:{line}: `-- {}` names no rule; list the rule ids to ignore",
                    source.path,
                    source::IGNORE_MARKER
                ));
            }
            for id in &comment.rules {
                if Rule::from_id(id).is_none() {
                    notes.push(format!(
                        "{}:{line}: `-- {}` names `{id}`, which is no lint rule",
                        source.path,
                        source::IGNORE_MARKER
                    ));
                }
                ignored_here
                    .entry(statement)
                    .or_default()
                    .insert(id.as_str());
            }
        }
        let is_ignored_at = |statement: usize, rule: Rule| {
            ignored_here
                .get(&statement)
                .is_some_and(|ids| ids.contains(rule.id()))
        };
        for hit in hits {
            let suppressed = ignore.contains(&hit.rule)
                || is_ignored_at(hit.statement, hit.rule)
                || (hit.rule.is_file_level() && is_ignored_at(0, hit.rule));
            if suppressed {
                result.suppressed += 1;
            } else {
                let end = match file.statements.get(hit.statement) {
                    Some(_) => file.statement_end(hit.statement),
                    None => source.text.len(),
                };
                result.findings.push(finding_of(source, hit, end));
            }
        }
    }
    result.totals = Totals::of(&result.findings);
    (result, notes)
}

/// `hit` as a finding in `source`; its span runs from the hit to `end` (its statement's
/// end), cut at the end of the line.
fn finding_of(source: &LintSource, hit: checks::Hit, end: usize) -> Finding {
    let position = position_of(&source.text, hit.offset);
    let span = Span::of(&source.text, hit.offset, end);
    Finding {
        rule: hit.rule.id().to_string(),
        severity: hit.severity,
        location: Location {
            file: Some(source.path.clone()),
            line: Some(position.line),
            column: Some(position.column),
            object: hit.object,
        },
        message: hit.message,
        lock: hit.lock,
        why: hit.why,
        fix: hit.fix,
        span,
        confirmed: None,
        observed: None,
    }
}

/// The files named on the command line.
fn read_files(paths: &[PathBuf]) -> Result<Vec<LintSource>, Error> {
    paths
        .iter()
        .map(|path| {
            let raw = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
            Ok(LintSource {
                path: path.display().to_string(),
                text: sql_text(raw, path)?,
                report: true,
            })
        })
        .collect()
}

/// UTF-8 checked, a leading byte-order mark removed.
fn sql_text(raw: Vec<u8>, path: &Path) -> Result<String, Error> {
    let text = String::from_utf8(raw).map_err(|e| Error::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Every migration of `folder` in order, reported when `report` says so.
pub(crate) fn migration_sources(
    folder: &MigrationsFolder,
    report: impl Fn(&LocalMigration) -> bool,
) -> Result<Vec<LintSource>, Error> {
    folder
        .migrations
        .iter()
        .map(|m| {
            Ok(LintSource {
                path: m.dir.join(MIGRATION_FILE).display().to_string(),
                text: m.script()?.to_string(),
                report: report(m),
            })
        })
        .collect()
}

/// The folder's migrations, reporting only those the database has not applied, and the
/// database's major.
fn pending_sources(ctx: &Context, dir: &Path) -> Result<(Vec<LintSource>, u32), Error> {
    let folder = MigrationsFolder::read_non_empty(dir)?;
    let mut session = ctx.connect()?;
    let major = u32::try_from(session.server_version_num / 10_000).unwrap_or_default();
    let schema = session.schema().to_string();
    let client = &mut session.client;
    let rows = history::read_rows_if_any(client, &schema)?;
    let state = MigrationState::compare(&folder, &rows);
    let pending: HashSet<&str> = state.pending.iter().map(String::as_str).collect();
    if pending.is_empty() {
        pgward_shared::log::info("no pending migration to lint");
    }
    Ok((
        migration_sources(&folder, |m| pending.contains(m.name.as_str()))?,
        major,
    ))
}

/// `users` as is; `"User"`, `"user"` (a reserved word) and `"a b"` quoted, so a name in a
/// message or a suggested statement reads as SQL.
pub(crate) fn display_ident(name: &str) -> String {
    if is_plain_name(name) && !is_reserved_word(name) {
        name.to_string()
    } else {
        sql::quote_ident(name)
    }
}

/// Whether `name` reads the same unquoted: lower case letters, digits, `_` and `$`.
pub(crate) fn is_plain_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
}

/// Whether the scanner takes `word` for a keyword that cannot stand as a table name.
fn is_reserved_word(word: &str) -> bool {
    use pg_query::protobuf::KeywordKind;
    pg_query::scan(word).is_ok_and(|scan| {
        scan.tokens.first().is_some_and(|t| {
            !matches!(
                KeywordKind::try_from(t.keyword_kind),
                Ok(KeywordKind::NoKeyword | KeywordKind::UnreservedKeyword)
            )
        })
    })
}

/// The strings of a list of `String` nodes (a qualified name, a column list).
pub(crate) fn string_values(nodes: &[pg_query::protobuf::Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(pg_query::NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// The last part of a possibly qualified name in a parse tree (`public.users` → `users`).
pub(crate) fn last_name(node: &pg_query::protobuf::Node) -> Option<String> {
    use pg_query::NodeEnum;
    match &node.node {
        Some(NodeEnum::List(list)) => list.items.last().and_then(last_name),
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_one(sql: &str) -> LintResult {
        let source = LintSource {
            path: "m.sql".into(),
            text: sql.into(),
            report: true,
        };
        lint_sources(&[source], &HashSet::new()).0
    }

    fn rules(result: &LintResult) -> Vec<(String, usize, usize)> {
        result
            .findings
            .iter()
            .map(|f| {
                (
                    f.rule.clone(),
                    f.location.line.unwrap_or_default(),
                    f.location.column.unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn names_are_shown_as_sql() {
        assert_eq!(display_ident("users"), "users");
        assert_eq!(display_ident("User"), "\"User\"");
        assert_eq!(display_ident("user"), "\"user\"");
        assert_eq!(display_ident("a b"), "\"a b\"");
    }

    #[test]
    fn new_tables_are_never_flagged_for_locks() {
        let result = lint_one(
            "CREATE TABLE \"T\" (id BIGSERIAL PRIMARY KEY, a TEXT);\n\
             CREATE INDEX t_a ON \"T\" (a);\n\
             ALTER TABLE \"T\" ADD COLUMN b TEXT NOT NULL, ALTER COLUMN a SET NOT NULL;\n\
             ALTER TABLE \"T\" ADD CONSTRAINT c CHECK (a <> '');\n\
             UPDATE \"T\" SET a = 'x';",
        );
        assert_eq!(rules(&result), vec![]);
        assert_eq!(result.statements, 5);
    }

    #[test]
    fn suppression_by_comment_and_by_rule_set() {
        let sql = "SET lock_timeout = '1s';\n-- pgward-ignore create-index-not-concurrently, nonsense\nCREATE INDEX i ON t (a);\nCREATE INDEX j ON t (b);";
        let source = LintSource {
            path: "m.sql".into(),
            text: sql.into(),
            report: true,
        };
        let (result, notes) = lint_sources(std::slice::from_ref(&source), &HashSet::new());
        assert_eq!(
            rules(&result),
            vec![("create-index-not-concurrently".to_string(), 4, 1)]
        );
        assert_eq!(result.suppressed, 1);
        assert_eq!(notes.len(), 1, "{notes:?}");
        let ignore = HashSet::from([Rule::CreateIndexNotConcurrently]);
        let (result, _) = lint_sources(&[source], &ignore);
        assert_eq!(rules(&result), vec![]);
        assert_eq!(result.suppressed, 2);
    }
}
