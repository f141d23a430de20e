//! Where a fleet's targets come from: a targets file or stdin (`--targets`), or a named
//! fleet of `pgward.toml` (`--fleet`: a list of URLs, a file, an environment variable, or
//! every schema of one database whose name is `LIKE` a pattern); and `--shard I/N`.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{is_variable_name, Settings};
use crate::connect::dburl::ConnectionSettings;
use crate::error::{Error, Result};

/// `[fleets.NAME]` of pgward.toml: exactly one of `urls`, `targets_file`, `urls_env` and
/// `schemas_like`; the rest are the defaults of the fleet flags.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The targets, one database URL each (better without passwords: PGPASSWORD or a
    /// `.pgpass`-free URL from `urls_env` keeps them out of the file).
    pub urls: Option<Vec<String>>,
    /// A targets file (one URL per line, `#` comments), relative to pgward.toml.
    pub targets_file: Option<PathBuf>,
    /// An environment variable holding the targets, one URL per line (`#` comments).
    pub urls_env: Option<String>,
    /// Every schema of one database whose name is `LIKE` this pattern (`tenant_%`), in
    /// name order, each a target (`?schema=NAME`).
    pub schemas_like: Option<String>,
    /// With `schemas_like`: the variable holding that database's URL [default: the usual
    /// one: --database-url, the environment's variable, DATABASE_URL].
    pub database_url_env: Option<String>,
    /// Default of `--parallel`.
    pub parallel: Option<usize>,
    /// Default of `--canary`.
    pub canary: Option<usize>,
    /// Default of `--stop-after-failures` (0: never stop).
    pub stop_after_failures: Option<usize>,
}

impl FleetConfig {
    /// What is wrong with this table, if anything (checked when pgward.toml is read).
    pub fn check(&self) -> std::result::Result<(), String> {
        let given = [
            self.urls.is_some(),
            self.targets_file.is_some(),
            self.urls_env.is_some(),
            self.schemas_like.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err("give exactly one of urls, targets_file, urls_env and schemas_like".into());
        }
        for var in [&self.urls_env, &self.database_url_env]
            .into_iter()
            .flatten()
        {
            if !is_variable_name(var) {
                return Err(format!(
                    "{var:?} is not the name of an environment variable (letters, digits and _, not starting with a digit)"
                ));
            }
        }
        if self.database_url_env.is_some() && self.schemas_like.is_none() {
            return Err("database_url_env goes with schemas_like (the other kinds name their databases themselves)".into());
        }
        if self.parallel == Some(0) {
            return Err("parallel must be at least 1".into());
        }
        Ok(())
    }
}

/// One database (or schema) of a fleet.
#[derive(Debug, Clone)]
pub struct FleetTargetSpec {
    /// 1-based place in the whole list.
    pub index: usize,
    /// The URL, as given (it goes to the command's process in its environment only).
    pub url: String,
    /// The URL with its password masked.
    pub redacted: String,
}

/// The list and where it came from.
#[derive(Debug, Clone)]
pub struct TargetList {
    /// `FILE`, `stdin` or `fleet NAME`.
    pub source: String,
    /// Every target, in order.
    pub targets: Vec<FleetTargetSpec>,
}

/// Reads targets, one URL per line: blank lines and `#` comments skipped (a comment
/// after a URL needs a blank before its `#`). Each URL is checked now, so a typo on line
/// 30 stops the run before target 1 is touched; exact duplicates are refused.
pub fn parse_lines(text: &str, source: &str) -> Result<Vec<FleetTargetSpec>> {
    let mut targets = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, raw) in text.lines().enumerate() {
        let line = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(at) => &raw[..at],
            None => raw,
        }
        .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let settings = ConnectionSettings::from_url(line).map_err(|e| {
            Error::usage(
                format!("{source}, line {}: {e}", n + 1),
                "each line of a targets file is one postgresql:// URL (add ?schema=NAME for a schema per tenant); `#` starts a comment",
            )
        })?;
        if !seen.insert(line.to_string()) {
            return Err(Error::usage(
                format!(
                    "{source}, line {}: {} is listed twice",
                    n + 1,
                    settings.redacted_url()
                ),
                "list each database (or schema) once: two runs on one target at a time would contend for its lock",
            ));
        }
        targets.push(FleetTargetSpec {
            index: targets.len() + 1,
            url: line.to_string(),
            redacted: settings.redacted_url(),
        });
    }
    Ok(targets)
}

/// The targets of `--targets FILE|-`.
pub fn from_targets_arg(arg: &str) -> Result<TargetList> {
    let (text, source) = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("read the targets from", "stdin", e))?;
        (text, "stdin".to_string())
    } else {
        let text = std::fs::read_to_string(arg).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::usage(
                format!("the targets file {arg} does not exist"),
                "give a file with one database URL per line, or - to read them from stdin",
            ),
            _ => Error::io("read the targets file", arg, e),
        })?;
        (text, arg.to_string())
    };
    Ok(TargetList {
        targets: parse_lines(&text, &source)?,
        source,
    })
}

/// The targets of `--fleet NAME`.
/// `base` gives the URL of a `schemas_like` fleet's database when the fleet names no
/// variable for it (asked only then).
pub fn from_config(
    name: &str,
    config: &FleetConfig,
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
    base: &dyn Fn() -> Result<String>,
) -> Result<TargetList> {
    let source = format!("fleet {name}");
    let targets = if let Some(urls) = &config.urls {
        parse_lines(&urls.join("\n"), &format!("[fleets.{name}] urls"))?
    } else if let Some(file) = &config.targets_file {
        let path = settings.path_from_config(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::usage(
                format!("[fleets.{name}] targets_file {}: {e}", path.display()),
                "targets_file is relative to pgward.toml and holds one database URL per line",
            )
        })?;
        parse_lines(&text, &path.display().to_string())?
    } else if let Some(var) = &config.urls_env {
        let text = env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Error::usage(
                format!("[fleets.{name}] reads its targets from ${var}, which is not set"),
                format!("export {var} with one database URL per line"),
            )
        })?;
        parse_lines(&text, &format!("${var}"))?
    } else if let Some(pattern) = &config.schemas_like {
        let base = match &config.database_url_env {
            Some(var) => {
                let url = env(var)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::EnvUrlUnset {
                        env: format!("fleets.{name}"),
                        var: var.clone(),
                    })?;
                register_password(&url);
                url
            }
            None => base()?,
        };
        tenant_schemas(&base, pattern)?
    } else {
        Vec::new()
    };
    Ok(TargetList { source, targets })
}

fn register_password(url: &str) {
    // Parsing registers the password for redaction.
    let _ = ConnectionSettings::from_url(url);
}

/// Every schema of `base`'s database `LIKE pattern`, each as `base` with `?schema=NAME`.
fn tenant_schemas(base: &str, pattern: &str) -> Result<Vec<FleetTargetSpec>> {
    let db = ConnectionSettings::from_url(base)?;
    let mut session = crate::connect::connect(&db, "pgward-fleet")?;
    let rows = session
        .client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1 \
             ORDER BY nspname COLLATE \"C\"",
            &[&pattern],
        )
        .map_err(|e| Error::query("list the schemas of the fleet", &e))?;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| with_query_param(base, "schema", &r.get::<_, String>(0)))
        .collect();
    parse_lines(&lines.join("\n"), &format!("schemas LIKE '{pattern}'"))
}

/// `url` with the query parameter `key` set to `value` (replacing any it had).
pub fn with_query_param(url: &str, key: &str, value: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
        .map(str::to_string)
        .collect();
    // RFC 3986's unreserved characters stay as they are: `tenant_7`, not `tenant%5F7`.
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    pairs.push(format!(
        "{key}={}",
        percent_encoding::utf8_percent_encode(value, VALUE)
    ));
    format!("{head}?{}", pairs.join("&"))
}

/// `--shard I/N`: the I-th of N shares (1-based), every N-th target from the I-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, 1..=N.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl Shard {
    /// Whether the target at 1-based `position` of the whole list is in this share.
    pub fn holds(self, position: usize) -> bool {
        (position - 1) % self.count == self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `I/N` for clap.
pub fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    let bad =
        || format!("`{text}` is not a shard like 1/3 (the first of three shares; I from 1 to N)");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_comments_and_blanks_and_refuse_duplicates_and_bad_urls() {
        let text =
            "# tenants\n\npostgresql://a:pw@h/db1 # first\n  postgresql://a@h/db2?schema=t_2\n";
        let targets = parse_lines(text, "f").expect("valid");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].url, "postgresql://a:pw@h/db1");
        assert_eq!(targets[0].redacted, "postgresql://a:***@h:5432/db1");
        assert_eq!(targets[1].index, 2);
        assert!(targets[1].redacted.ends_with("?schema=t_2"));

        let err = parse_lines("postgresql://a@h/x\npostgresql://a@h/x\n", "f").expect_err("twice");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse_lines("host=h password=hunter2\n", "f").expect_err("not a URL");
        assert!(err.to_string().contains("f, line 1"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn shards_cover_the_list_once() {
        assert!(parse_shard("0/3").is_err());
        assert!(parse_shard("4/3").is_err());
        assert!(parse_shard("1/0").is_err());
        assert!(parse_shard("x").is_err());
        let shards: Vec<Shard> = (1..=3)
            .map(|i| parse_shard(&format!("{i}/3")).expect("valid"))
            .collect();
        for position in 1..=40 {
            assert_eq!(shards.iter().filter(|s| s.holds(position)).count(), 1);
        }
        assert!(shards[0].holds(1) && shards[0].holds(4) && shards[2].holds(3));
    }

    #[test]
    fn query_parameter_replaced_or_added() {
        assert_eq!(
            with_query_param("postgresql://u@h/db", "schema", "tenant_1"),
            "postgresql://u@h/db?schema=tenant_1"
        );
        assert_eq!(
            with_query_param(
                "postgresql://u@h/db?schema=x&sslmode=disable",
                "schema",
                "t 1"
            ),
            "postgresql://u@h/db?sslmode=disable&schema=t%201"
        );
    }
}
