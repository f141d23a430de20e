//! Configuration: flags beat environment variables beat `pgward.toml`.
//!
//! The flags every binary shares are defined here once ([`GlobalArgs`], [`GuardArgs`]) and
//! flattened into each binary's clap definition, so `--env` or `--force` mean the same
//! everywhere. [`Settings`] resolves them against the environment and the config file;
//! resolution takes the environment as a function so tests need not touch the process's.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::connect::dburl::ConnectionSettings;
use crate::error::{Error, Result};

/// The config file looked for in the current directory.
pub const CONFIG_FILE: &str = "pgward.toml";
/// Selects an environment of the config file, like `--env`.
pub const ENV_VAR_ENV: &str = "PGWARD_ENV";
/// The audit log path, like `--audit-log`.
pub const ENV_VAR_AUDIT_LOG: &str = "PGWARD_AUDIT_LOG";
/// Prisma's default migrations folder.
pub const DEFAULT_MIGRATIONS_DIR: &str = "prisma/migrations";

/// How the one document on stdout is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// The JSON envelope (pretty on a terminal).
    #[default]
    Json,
    /// A human summary.
    Text,
    /// GitHub Actions annotations (`::error file=...`) for the findings of check commands,
    /// then the human summary.
    Github,
    /// Markdown, for pull-request comments and CI step summaries.
    Markdown,
    /// One self-contained HTML page (inline CSS and SVG charts, no scripts, no network).
    Html,
    /// Prometheus textfile-collector metrics (the outcome; backup ages and sizes,
    /// migration durations and failures where the document has them).
    Prometheus,
}

/// Flags every pgward binary takes.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct GlobalArgs {
    /// Database URL (postgresql://USER:PASSWORD@HOST:PORT/DB?schema=S). Default: the
    /// selected environment's variable, then DATABASE_URL, then PGHOST/PGDATABASE/...
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Config file [default: ./pgward.toml if present]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Environment of the config file to use (also PGWARD_ENV)
    #[arg(long = "env", global = true, value_name = "NAME")]
    pub env_name: Option<String>,
    /// Output format of stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// No log lines on stderr (errors still print)
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Append an audit line for every change to this file (also PGWARD_AUDIT_LOG)
    #[arg(long, global = true, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// POST a Slack-compatible message here when the command fails (also PGWARD_NOTIFY_URL)
    #[arg(long, global = true, value_name = "URL")]
    pub notify: Option<String>,
    /// Notify on failure only, or on success too
    #[arg(long, global = true, value_enum, default_value_t = crate::notify::NotifyOn::Failure)]
    pub notify_on: crate::notify::NotifyOn,
}

/// The safety flags of commands that change something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Default)]
pub struct GuardArgs {
    /// Allow a destructive action in a protected environment
    #[arg(long)]
    pub force: bool,
    /// Approve a non-destructive change (deploy) in a protected environment
    #[arg(long)]
    pub yes: bool,
}

/// `pgward.toml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The migrations folder, relative to the config file.
    pub migrations: Option<PathBuf>,
    /// The audit log, relative to the config file.
    pub audit_log: Option<PathBuf>,
    /// Named environments.
    #[serde(default)]
    pub env: BTreeMap<String, EnvConfig>,
    /// `[lint]`: settings of `pgward-validate lint`.
    #[serde(default)]
    pub lint: LintConfig,
    /// `[fleets.NAME]`: named sets of databases or tenant schemas (`--fleet NAME`).
    #[serde(default)]
    pub fleets: BTreeMap<String, crate::fleet::FleetConfig>,
}

/// The `[lint]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LintConfig {
    /// Rule ids never reported.
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// A key that takes one string or a list of them (`backups`); an empty list is refused.
fn one_or_many<'de, D>(deserializer: D) -> std::result::Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let list = match OneOrMany::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a location or a list of locations"))?
    {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    };
    if list.is_empty() {
        return Err(serde::de::Error::custom(
            "an empty list: name at least one location, or leave the key out",
        ));
    }
    Ok(Some(list))
}

/// One `[env.NAME]` table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// The variable holding this environment's database URL (the URL never sits in the file).
    pub database_url_env: Option<String>,
    /// Backup locations: a folder or s3://bucket/prefix, or a list of them: every backup
    /// is written to the first and copied to the others (storage/copies.rs).
    #[serde(default, deserialize_with = "one_or_many")]
    pub backups: Option<Vec<String>>,
    /// Destructive actions need --force, deploy needs --yes, seeding is refused.
    #[serde(default)]
    pub protected: bool,
    /// The migrations folder for this environment, relative to the config file.
    pub migrations: Option<PathBuf>,
    /// scripts/migrate.sh: restore the backup it took before a deploy, by itself, when the
    /// deploy committed part of a migration or the checks after it found a regression.
    /// Off by default: the script stops and prints the restore command instead.
    #[serde(default)]
    pub auto_restore: bool,
    /// The environment's databases are the fleet `[fleets.NAME]` (scripts/migrate.sh and
    /// backup-cron.sh run each step over it; docs/fleet.md).
    pub fleet: Option<String>,
    // The scripts' keys below: see `docs/config.md`; `pgward-report settings` gives them
    // to the scripts resolved, defaults filled in ([`crate::workflow`]).
    /// scripts/migrate.sh deploy: a shell command run before the backup and the deploy
    /// (stop or drain the application); when it fails, nothing is touched.
    pub pre_deploy: Option<String>,
    /// scripts/migrate.sh deploy: a shell command run after the deploy and its checks.
    pub post_deploy: Option<String>,
    /// How long each hook may run (default 5min).
    #[serde(default, deserialize_with = "crate::workflow::duration")]
    pub hook_timeout: Option<std::time::Duration>,
    /// scripts/migrate.sh deploy: GET this URL after the deploy until it answers
    /// `health_status`.
    pub health_url: Option<String>,
    /// The status a healthy application answers (default 200).
    pub health_status: Option<u16>,
    /// How many GETs at most (default 5), with a doubling pause between them.
    pub health_retries: Option<u32>,
    /// How long the whole health check may take (default 60s).
    #[serde(default, deserialize_with = "crate::workflow::duration")]
    pub health_timeout: Option<std::time::Duration>,
    /// What an unhealthy application or a failing post_deploy undoes: `stop` (nothing),
    /// `rollback` (down.sql), `restore` (the backup); default `restore` with
    /// auto_restore = true, else `stop`.
    pub on_unhealthy: Option<crate::workflow::OnUnhealthy>,
    /// The scripts' one notification per run (PGWARD_NOTIFY_URL wins).
    pub notify_url: Option<String>,
    /// When the scripts notify (default `attention`: failures and needs-attention).
    pub notify_on: Option<crate::notify::NotifyOn>,
    /// A log file per script run in this folder, relative to the config file.
    pub log_dir: Option<PathBuf>,
    /// Run logs older than this many days are removed (default 30).
    pub log_keep_days: Option<u32>,
    /// The layout of this environment's backups when `--backup-format` is not given
    /// (`directory`, the default, or `sql`: one file `zstd -dc | psql` restores without
    /// pgward) — also the backup scripts/migrate.sh takes before a deploy.
    pub backup_format: Option<crate::archive::manifest::BackupFormat>,
    /// The S3 storage class of this environment's backup objects (`STANDARD_IA`,
    /// `GLACIER_IR`, ...; `--s3-storage-class` wins).
    pub s3_storage_class: Option<String>,
    /// Encrypt every backup of this environment to these age recipients (`age1…` public
    /// keys; `--encrypt-to` replaces them).
    #[serde(default)]
    pub encrypt_to: Vec<String>,
    /// The age identity file (relative to this file) that decrypts this environment's
    /// encrypted backups (`--identity` and `PGWARD_AGE_IDENTITY` win).
    pub age_identity: Option<PathBuf>,
    /// `[env.NAME.retention]`: what `pgward-backup prune --env NAME` (and backup-cron.sh)
    /// keeps when no retention flag is given.
    pub retention: Option<crate::retention::Retention>,
    /// scripts/rehearse.sh: the variable holding the URL of the rehearsal server, where
    /// a scratch copy of this environment's newest verified backup is restored.
    pub rehearsal_url_env: Option<String>,
    /// scripts/migrate.sh deploy: rehearse first, and stop on a lock over the budget.
    #[serde(default)]
    pub rehearse: bool,
    /// scripts/rehearse.sh's lock budget (default 5s in a protected environment).
    #[serde(default, deserialize_with = "crate::workflow::duration")]
    pub max_lock: Option<std::time::Duration>,
}

/// Whether `name` can be the name of an environment variable (what `database_url_env`
/// holds): letters, digits and `_`, not starting with a digit. Anything else is refused,
/// so that no reader of the file (a shell script expanding `${!name}`) can be made to run
/// code by it.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Flags, environment and config file, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flags as given.
    pub args: GlobalArgs,
    /// The config file, if one was found or given.
    pub config_path: Option<PathBuf>,
    /// Its contents (default when there is none).
    pub config: ConfigFile,
    /// The selected environment's name.
    pub env_name: Option<String>,
    /// The selected environment.
    pub env: Option<EnvConfig>,
    database_url: Option<String>,
    database_url_source: &'static str,
    pg_env: Option<ConnectionSettings>,
    /// `PGPASSWORD`, for a URL that names no password (as libpq takes it).
    pg_password: Option<String>,
    audit_log: Option<PathBuf>,
    notify_url: Option<String>,
}

impl Settings {
    /// Resolves `args` against the environment (`env`) and the config file.
    pub fn resolve(args: GlobalArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let config_path = match &args.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let config = match &config_path {
            Some(p) => load_config(p)?,
            None => ConfigFile::default(),
        };
        let env_name = args.env_name.clone().or_else(|| var(ENV_VAR_ENV));
        let selected = match &env_name {
            Some(name) => Some(config.env.get(name).cloned().ok_or_else(|| {
                Error::UnknownEnv {
                    name: name.clone(),
                    path: config_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "no pgward.toml".into()),
                    known: config.env.keys().cloned().collect(),
                }
            })?),
            None => None,
        };
        let (database_url, database_url_source) = if let Some(url) = &args.database_url {
            (Some(url.clone()), "--database-url")
        } else if let Some(url) = var(crate::fleet::TARGET_ENV) {
            // One target of a fleet run (crate::fleet): it wins over the environment's.
            (Some(url), "the fleet's target list")
        } else if let Some(var_name) = selected.as_ref().and_then(|e| e.database_url_env.clone()) {
            let url = var(&var_name).ok_or_else(|| Error::EnvUrlUnset {
                env: env_name.clone().unwrap_or_default(),
                var: var_name.clone(),
            })?;
            (Some(url), "the environment's variable")
        } else {
            (var("DATABASE_URL"), "DATABASE_URL")
        };
        let pg_env = if database_url.is_none() {
            ConnectionSettings::from_pg_env(|k| var(k))?
        } else {
            None
        };
        let pg_password = var("PGPASSWORD");
        let base = config_path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let audit_log = args
            .audit_log
            .clone()
            .or_else(|| var(ENV_VAR_AUDIT_LOG).map(PathBuf::from))
            .or_else(|| config.audit_log.as_ref().map(|p| base.join(p)));
        let notify_url = args
            .notify
            .clone()
            .or_else(|| var(crate::notify::ENV_VAR_NOTIFY_URL));
        Ok(Settings {
            notify_url,
            args,
            config_path,
            config,
            env_name,
            env: selected,
            database_url,
            database_url_source,
            pg_env,
            pg_password,
            audit_log,
        })
    }

    /// The connection settings, or an error saying how to give them.
    pub fn database(&self) -> Result<ConnectionSettings> {
        match (&self.database_url, &self.pg_env) {
            (Some(url), _) => {
                let mut settings = ConnectionSettings::from_url(url).map_err(|e| match e {
                    Error::InvalidUrl { reason } => Error::InvalidUrl {
                        reason: format!("{reason} (from {})", self.database_url_source),
                    },
                    other => other,
                })?;
                // A URL without a password takes PGPASSWORD, as libpq does: a way to keep
                // the password out of the URL, and so out of every command line.
                if settings.password.is_none() {
                    if let Some(password) = &self.pg_password {
                        crate::redact::register_secret(password);
                        settings.password = Some(password.clone());
                    }
                }
                Ok(settings)
            }
            (None, Some(pg)) => Ok(pg.clone()),
            (None, None) => Err(Error::NoDatabaseUrl),
        }
    }

    /// The database URL as given (flag, the environment's variable, DATABASE_URL), if one
    /// was: a fleet of tenant schemas derives its targets' URLs from it.
    pub fn database_url_text(&self) -> Option<String> {
        self.database_url.clone()
    }

    /// The migrations folder: `--dir`, else the environment's, else the file's, else
    /// `prisma/migrations`. Paths from the file are relative to the file.
    pub fn migrations_dir(&self, flag: Option<&Path>) -> PathBuf {
        if let Some(dir) = flag {
            return dir.to_path_buf();
        }
        let base = self
            .config_path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        self.env
            .as_ref()
            .and_then(|e| e.migrations.clone())
            .or_else(|| self.config.migrations.clone())
            .map(|p| base.join(p))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MIGRATIONS_DIR))
    }

    /// The selected environment's `backups`, in order, a local folder made relative to
    /// the file like `migrations`; `None` without an environment or the key.
    pub fn backup_locations(&self) -> Option<Vec<String>> {
        let listed = self.env.as_ref()?.backups.as_ref()?;
        Some(
            listed
                .iter()
                .map(|b| {
                    if b.contains("://") {
                        b.clone()
                    } else {
                        self.path_from_config(Path::new(b)).display().to_string()
                    }
                })
                .collect(),
        )
    }

    /// A path written in the config file, relative to the file's folder.
    pub fn path_from_config(&self, path: &Path) -> PathBuf {
        let base = self
            .config_path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        base.join(path)
    }

    /// Whether the selected environment is protected.
    pub fn protected(&self) -> bool {
        self.env.as_ref().is_some_and(|e| e.protected)
    }

    /// The notification URL, if notifications are on.
    pub fn notify_url(&self) -> Option<&str> {
        self.notify_url.as_deref()
    }

    /// The audit log path, if auditing is on.
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// A destructive action (restore over a database, rollback, resolve, prune): in a
    /// protected environment it needs `--force`, or the database name typed on a terminal.
    pub fn guard_destructive(&self, action: &str, target: &str, guard: GuardArgs) -> Result<()> {
        if !self.protected() || guard.force {
            return Ok(());
        }
        if confirm_on_terminal(&format!(
            "`{action}` on {target} in the protected environment `{}`. Type the database name to continue: ",
            self.env_name.as_deref().unwrap_or_default()
        ), target_database(target)) {
            return Ok(());
        }
        Err(Error::NeedsForce {
            action: action.to_string(),
            target: target.to_string(),
            env: self.env_name.clone().unwrap_or_default(),
        })
    }

    /// Whether a deploy passes the protected environment's guard without asking anyone:
    /// the one rule [`Settings::guard_deploy`] applies (and deploy's early connect reads).
    pub fn deploy_needs_no_confirmation(&self, guard: GuardArgs) -> bool {
        !self.protected() || guard.yes
    }

    /// A deploy: in a protected environment it needs `--yes` (`--force` does not stand in
    /// for it), or the database name typed on a terminal.
    pub fn guard_deploy(&self, target: &str, guard: GuardArgs) -> Result<()> {
        if self.deploy_needs_no_confirmation(guard) {
            return Ok(());
        }
        if confirm_on_terminal(&format!(
            "deploy to {target} in the protected environment `{}`. Type the database name to continue: ",
            self.env_name.as_deref().unwrap_or_default()
        ), target_database(target)) {
            return Ok(());
        }
        Err(Error::NeedsYes {
            target: target.to_string(),
            env: self.env_name.clone().unwrap_or_default(),
        })
    }

    /// Something never allowed in a protected environment (seeding).
    pub fn refuse_if_protected(&self, action: &str) -> Result<()> {
        if self.protected() {
            return Err(Error::ProtectedForbidden {
                action: action.to_string(),
                env: self.env_name.clone().unwrap_or_default(),
            });
        }
        Ok(())
    }
}

/// `host:port/db` → `db`.
fn target_database(target: &str) -> &str {
    target.rsplit('/').next().unwrap_or(target)
}

/// Asks on the terminal; false without one.
fn confirm_on_terminal(prompt: &str, expected: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{prompt}");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    line.trim() == expected
}

fn load_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let config: ConfigFile = toml::from_str(&text).map_err(|e: toml::de::Error| Error::Config {
        path: path.into(),
        reason: e.message().to_string(),
    })?;
    for (name, fleet) in &config.fleets {
        fleet.check().map_err(|reason| Error::Config {
            path: path.into(),
            reason: format!("[fleets.{name}] {reason}"),
        })?;
    }
    for (name, env) in &config.env {
        crate::workflow::check_env(env).map_err(|reason| Error::Config {
            path: path.into(),
            reason: format!("[env.{name}] {reason}"),
        })?;
        if let Some(fleet) = env
            .fleet
            .as_ref()
            .filter(|f| !config.fleets.contains_key(*f))
        {
            return Err(Error::Config {
                path: path.into(),
                reason: format!("[env.{name}] fleet = {fleet:?} names no [fleets.{fleet}]"),
            });
        }
        if let Some(var) = &env.database_url_env {
            if !is_variable_name(var) {
                return Err(Error::Config {
                    path: path.into(),
                    reason: format!(
                        "[env.{name}] database_url_env = {var:?} is not the name of an environment variable (letters, digits and _, not starting with a digit)"
                    ),
                });
            }
        }
    }
    Ok(config)
}

/// Parses a duration flag (`10s`, `500ms`, `2min`) for clap.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 10s, 500ms or 2min: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("pgward.toml");
        std::fs::write(&path, text).expect("temp dir is writable");
        path
    }

    const CONFIG: &str = r#"
migrations = "db/migrations"
[env.staging]
database_url_env = "STAGING_DATABASE_URL"
backups = "s3://acme/staging"
[env.production]
database_url_env = "PRODUCTION_DATABASE_URL"
protected = true
"#;

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_config(dir.path(), CONFIG);
        let vars = |k: &str| match k {
            "PGWARD_ENV" => Some("staging".to_string()),
            "STAGING_DATABASE_URL" => Some("postgresql://u@stage/app".to_string()),
            "DATABASE_URL" => Some("postgresql://u@default/app".to_string()),
            _ => None,
        };
        let args = GlobalArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let s = Settings::resolve(args.clone(), &vars).expect("valid");
        assert_eq!(s.env_name.as_deref(), Some("staging"));
        assert_eq!(s.database().expect("url").host.to_string(), "stage");
        assert_eq!(s.migrations_dir(None), dir.path().join("db/migrations"));
        assert!(!s.protected());

        let flagged = Settings::resolve(
            GlobalArgs {
                database_url: Some("postgresql://u@flag/app".into()),
                env_name: Some("production".into()),
                ..args
            },
            &|k| match k {
                "PRODUCTION_DATABASE_URL" => Some("postgresql://u@prod/app".into()),
                other => vars(other),
            },
        )
        .expect("valid");
        assert_eq!(flagged.database().expect("url").host.to_string(), "flag");
        assert!(flagged.protected());
    }

    #[test]
    fn unknown_env_unset_variable_and_bad_file_are_usage_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_config(dir.path(), CONFIG);
        let with = |env: &str| GlobalArgs {
            config: Some(path.clone()),
            env_name: Some(env.into()),
            ..Default::default()
        };
        let err = Settings::resolve(with("prod"), &|_| None).expect_err("unknown env");
        assert_eq!(err.code(), "UNKNOWN_ENV");
        assert!(err.hint().contains("production, staging"), "{}", err.hint());
        let err = Settings::resolve(with("staging"), &|_| None).expect_err("unset var");
        assert_eq!(err.code(), "ENV_URL_UNSET");

        let bad = write_config(dir.path(), "[env.x]\nprotcted = true\n");
        let err = Settings::resolve(
            GlobalArgs {
                config: Some(bad),
                ..Default::default()
            },
            &|_| None,
        )
        .expect_err("typo in key");
        assert_eq!(err.code(), "CONFIG_INVALID");
        assert_eq!(err.exit(), crate::Exit::Usage);
    }
}
