//! Fleets: one command over many databases, or many tenant schemas of one, in parallel,
//! canary first (docs/fleet.md).
//!
//! Every command that acts on one database flattens [`FleetArgs`]. Given `--targets` or
//! `--fleet`, the binary does not run the command itself: [`FleetArgs::run_if_given`]
//! expands the targets ([`targets`]), applies `--shard`, and runs the same binary once per
//! target (`std::env::current_exe()`, the fleet flags removed, `--format json --quiet`
//! added), `--parallel` at a time, each in its own process group with the target's URL in
//! its environment ([`TARGET_ENV`], never on a command line, so passwords stay out of
//! `ps`). It reads each run's JSON envelope and exit code and prints one envelope whose
//! `result` is a [`result::FleetResult`]. So every single-database command is
//! fleet-capable through one code path, and the targets are isolated from one another.

pub mod result;
#[cfg(feature = "progress")]
mod runner;
pub mod targets;

use std::time::Duration;

pub use result::{FleetResult, FleetTarget, TargetOutcome};
pub use targets::{FleetConfig, Shard};

use crate::config::parse_duration;

/// The variable a fleet's run of a command reads its target's URL from; it wins over
/// `--env`'s variable and DATABASE_URL (only `--database-url` beats it).
pub const TARGET_ENV: &str = "PGWARD_FLEET_TARGET";

/// `--parallel` when neither the flag nor the fleet's config gives it.
pub const DEFAULT_PARALLEL: usize = 4;

/// The text every target's slug replaces in the command's arguments
/// (`--to s3://bucket/prod/{target}`): one backup prefix per target.
pub const TARGET_PLACEHOLDER: &str = "{target}";

/// `--stop-after-failures N|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    /// No new target starts once this many have failed.
    Failures(usize),
    /// Every target runs, whatever fails.
    Never,
}

fn parse_stop_after(text: &str) -> Result<StopAfter, String> {
    match text {
        "never" => Ok(StopAfter::Never),
        n => match n.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "`{text}` is not a number of failures from 1, or `never`"
            )),
            Ok(n) => Ok(StopAfter::Failures(n)),
        },
    }
}

/// Whether a command changes its targets (deploy, rollback, backup): it stops after the
/// first failure unless told otherwise. Reads and checks run on every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetKind {
    /// Changes each target: `--stop-after-failures` defaults to 1.
    Changes,
    /// Reads or checks: every target runs by default.
    Reads,
}

/// The fleet flags, defined once and flattened into every command that acts on one
/// database.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Fleet (one command over many databases)")]
pub struct FleetArgs {
    /// Run over every database URL of FILE, one per line (`#` comments, `?schema=` for a
    /// schema per tenant); `-` reads them from stdin
    #[arg(long = "targets", value_name = "FILE|-", conflicts_with = "fleet")]
    pub targets: Option<String>,
    /// Run over the fleet [fleets.NAME] of pgward.toml
    #[arg(long = "fleet", value_name = "NAME")]
    pub fleet: Option<String>,
    /// Targets run at once, one connection each [default: the fleet's `parallel`, else 4]
    #[arg(long = "parallel", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub parallel: Option<u64>,
    /// Run the first K targets first, alone; stop if any of them fails
    #[arg(long = "canary", value_name = "K")]
    pub canary: Option<usize>,
    /// Start no new target once N have failed (running ones finish) [default: 1 for deploy, rollback and backup, never for reads and checks]
    #[arg(long = "stop-after-failures", value_name = "N|never", value_parser = parse_stop_after)]
    pub stop_after_failures: Option<StopAfterArg>,
    /// Take every N-th target from the I-th (1-based): N CI jobs cover a fleet once
    #[arg(long = "shard", value_name = "I/N", value_parser = targets::parse_shard)]
    pub shard: Option<ShardArg>,
    /// Run only the targets at these places of the list (1-based, as result.targets[].index)
    #[arg(long = "only", value_name = "I,J,...", value_delimiter = ',')]
    pub only: Vec<usize>,
    /// How long each target may take to connect (sets connect_timeout on URLs without one) [default: the URL's, else 5s]
    #[arg(long = "connect-timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
}

/// [`StopAfter`] as a flag value (clap wants `Clone + Send + Sync + 'static`).
pub type StopAfterArg = StopAfter;
/// [`Shard`] as a flag value.
pub type ShardArg = Shard;

/// The long names of [`FleetArgs`]' flags, each taking a value: what a target's run of
/// the command must not see again.
pub const FLEET_FLAGS: &[&str] = &[
    "--targets",
    "--fleet",
    "--parallel",
    "--canary",
    "--stop-after-failures",
    "--shard",
    "--only",
    "--connect-timeout",
];

impl FleetArgs {
    /// Whether a fleet was asked for.
    pub fn given(&self) -> bool {
        self.targets.is_some() || self.fleet.is_some()
    }

    /// Whether any fleet flag was given.
    fn any(&self) -> bool {
        *self != FleetArgs::default()
    }

    /// With `--targets` or `--fleet`: runs `tool command` over the fleet, prints the fleet's
    /// envelope and exits. With fleet flags but neither: a usage error. Without any: returns,
    /// and the binary runs the command on its one database.
    #[cfg(feature = "progress")]
    pub fn run_if_given(
        &self,
        tool: &'static str,
        command: &str,
        global: &crate::config::GlobalArgs,
        kind: FleetKind,
    ) {
        if !self.any() {
            return;
        }
        if !self.given() {
            crate::output::run(tool, command, global.clone(), |_| {
                Err(crate::Error::usage(
                    "--parallel, --canary, --stop-after-failures, --shard, --only and --connect-timeout go with --targets or --fleet",
                    "name the databases: --targets FILE (one URL per line, - for stdin) or --fleet NAME ([fleets.NAME] of pgward.toml)",
                )
                .into())
            });
        }
        runner::run(tool, command, global, self, kind)
    }
}

/// A path-safe name of a target for [`TARGET_PLACEHOLDER`]: `host_port_database`, and
/// `_schema` when it names one; anything but letters, digits, `-` and `.` becomes `_`.
pub fn slug(settings: &crate::connect::dburl::ConnectionSettings) -> String {
    let host = match &settings.host {
        crate::connect::dburl::Host::Tcp(h) => h.clone(),
        crate::connect::dburl::Host::Socket(_) => "socket".to_string(),
    };
    let mut raw = format!("{host}_{}_{}", settings.port, settings.dbname);
    if let Some(schema) = &settings.schema {
        raw.push('_');
        raw.push_str(schema);
    }
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    #[test]
    fn the_flags_a_target_run_drops_are_every_fleet_flag() {
        let cmd = FleetArgs::augment_args(Command::new("x"));
        let mut longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        longs.sort();
        let mut listed: Vec<String> = FLEET_FLAGS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(longs, listed);
    }

    #[test]
    fn stop_after_takes_a_count_or_never() {
        assert_eq!(parse_stop_after("2"), Ok(StopAfter::Failures(2)));
        assert_eq!(parse_stop_after("never"), Ok(StopAfter::Never));
        assert!(parse_stop_after("0").is_err());
        assert!(parse_stop_after("x").is_err());
    }

    #[test]
    fn slugs_are_path_safe() {
        let s = crate::connect::dburl::ConnectionSettings::from_url(
            "postgresql://u:pw@db.example:6432/app?schema=tenant%2F7",
        )
        .expect("valid");
        assert_eq!(slug(&s), "db.example_6432_app_tenant_7");
    }
}
