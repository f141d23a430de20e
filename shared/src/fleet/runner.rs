//! Runs a command over a fleet: one process of the same binary per target, `--parallel`
//! at a time, canary first, stop rules, Ctrl-C; then one envelope for all.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::result::{severity, FleetResult, FleetRun, FleetTarget, TargetOutcome};
use super::targets::{self, FleetTargetSpec, TargetList};
use super::{
    slug, FleetArgs, FleetKind, StopAfter, DEFAULT_PARALLEL, FLEET_FLAGS, TARGET_ENV,
    TARGET_PLACEHOLDER,
};
use crate::codes::ErrorCode;
use crate::config::{GlobalArgs, Settings};
use crate::connect::dburl::ConnectionSettings;
use crate::error::{Error, Exit, Result};
use crate::output::{Context, ErrorBody, Failure, Outcome};

/// The URL the fleet's own envelope resolves settings with: the fleet process never
/// connects to it (its targets' processes connect, each to its own).
const NO_DATABASE: &str = "postgresql://fleet@fleet.invalid/fleet";

/// How often the coordinator looks at its running targets.
const POLL: Duration = Duration::from_millis(25);

/// Lines of a target's stderr kept for its entry when it printed no JSON document.
const STDERR_TAIL: usize = 5;

/// Runs `tool command` over the fleet `args` names, prints the fleet's envelope, exits.
pub(super) fn run(
    tool: &'static str,
    command: &str,
    global: &GlobalArgs,
    args: &FleetArgs,
    kind: FleetKind,
) -> ! {
    let original = global.clone();
    let mut parent = global.clone();
    parent.database_url = Some(NO_DATABASE.into());
    let command_name = command.to_string();
    crate::output::run(tool, command, parent, |ctx| {
        fleet(ctx, tool, &command_name, &original, args, kind)
    })
}

/// The settings of the fleet's list, resolved.
struct Plan {
    list: TargetList,
    listed: usize,
    parallel: usize,
    canary: usize,
    stop_after: StopAfter,
}

fn plan(ctx: &Context, original: &GlobalArgs, args: &FleetArgs, kind: FleetKind) -> Result<Plan> {
    let env = |k: &str| std::env::var(k).ok();
    let config = match &args.fleet {
        Some(name) => Some(ctx.settings.config.fleets.get(name).ok_or_else(|| {
            let known: Vec<&str> = ctx.settings.config.fleets.keys().map(String::as_str).collect();
            Error::usage(
                format!(
                    "the fleet `{name}` is not defined in {}",
                    ctx.settings
                        .config_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "pgward.toml (there is none here)".into())
                ),
                if known.is_empty() {
                    "define it as [fleets.NAME] with urls, targets_file, urls_env or schemas_like (docs/fleet.md), or pass --targets FILE".to_string()
                } else {
                    format!("the fleets defined: {}", known.join(", "))
                },
            )
        })?),
        None => None,
    };
    let schemas = config.is_some_and(|c| c.schemas_like.is_some());
    if original.database_url.is_some() && !schemas {
        return Err(Error::usage(
            "--database-url names one database, and --targets / --fleet name the fleet's",
            "drop --database-url (it only gives the database of a schemas_like fleet)",
        ));
    }
    let mut list = match (&args.targets, &args.fleet, config) {
        (Some(arg), _, _) => targets::from_targets_arg(arg)?,
        (None, Some(name), Some(config)) => {
            let base = || -> Result<String> {
                Settings::resolve(original.clone(), &env)?
                    .database_url_text()
                    .ok_or_else(|| Error::usage(
                        format!("the fleet `{name}` takes the schemas of one database, and no database URL is given"),
                        "set database_url_env in [fleets.NAME], or give --database-url / DATABASE_URL / --env",
                    ))
            };
            targets::from_config(name, config, &ctx.settings, &env, &base)?
        }
        _ => unreachable!("run_if_given runs a fleet only with --targets or --fleet"),
    };
    if list.targets.is_empty() {
        return Err(Error::usage(
            format!("{} lists no target", list.source),
            "list one database URL per line (`#` starts a comment)",
        ));
    }
    let listed = list.targets.len();
    if let Some(shard) = args.shard {
        list.targets.retain(|t| shard.holds(t.index));
    }
    if let Some(missing) = args.only.iter().find(|i| **i == 0 || **i > listed) {
        return Err(Error::usage(
            format!("--only {missing}: {} lists {listed} target(s)", list.source),
            "give places in the list, from 1, as result.targets[].index numbers them",
        ));
    }
    if !args.only.is_empty() {
        list.targets.retain(|t| args.only.contains(&t.index));
    }
    let parallel = args
        .parallel
        .map(|p| p as usize)
        .or(config.and_then(|c| c.parallel))
        .unwrap_or(DEFAULT_PARALLEL);
    let canary = args.canary.or(config.and_then(|c| c.canary)).unwrap_or(0);
    let stop_after = args
        .stop_after_failures
        .or(config.and_then(|c| c.stop_after_failures).map(|n| {
            if n == 0 {
                StopAfter::Never
            } else {
                StopAfter::Failures(n)
            }
        }))
        .unwrap_or(match kind {
            FleetKind::Changes => StopAfter::Failures(1),
            FleetKind::Reads => StopAfter::Never,
        });
    Ok(Plan {
        list,
        listed,
        parallel: parallel.max(1),
        canary,
        stop_after,
    })
}

/// One target's run, under way.
struct Running {
    slot: usize,
    child: Child,
    started: Instant,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<String>>,
}

fn fleet(
    ctx: &Context,
    tool: &str,
    command: &str,
    original: &GlobalArgs,
    args: &FleetArgs,
    kind: FleetKind,
) -> std::result::Result<Outcome, Failure> {
    let plan = plan(ctx, original, args, kind)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find the running program", "current_exe", e))?;
    let base_args = target_args(std::env::args_os().skip(1).collect());
    let specs = &plan.list.targets;
    let total = specs.len();
    let canary = plan.canary.min(total);
    crate::log::info(&format!(
        "{tool} {command} over {total} target(s) of {}{}: {} at a time{}",
        plan.list.source,
        args.shard
            .map(|s| format!(" (shard {s} of {} listed)", plan.listed))
            .unwrap_or_default(),
        plan.parallel,
        if canary > 0 {
            format!(", the first {canary} alone first (canary)")
        } else {
            String::new()
        }
    ));

    let mut entries: Vec<FleetTarget> = specs
        .iter()
        .enumerate()
        .map(|(slot, s)| FleetTarget {
            index: s.index,
            target: s.redacted.clone(),
            canary: slot < canary,
            outcome: TargetOutcome::NotStarted,
            exit_code: None,
            duration_ms: None,
            result: serde_json::Value::Null,
            warnings: Vec::new(),
            error: None,
        })
        .collect();

    let progress = crate::progress::Progress::start_counting(
        &format!("{tool} {command}"),
        total as u64,
        "targets",
    );
    let mut queue: VecDeque<usize> = (0..canary).collect();
    let mut rest: VecDeque<usize> = (canary..total).collect();
    let mut in_canary = canary > 0;
    if !in_canary {
        queue.append(&mut rest);
    }
    let mut running: Vec<Running> = Vec::new();
    let mut failures = 0usize;
    let mut stopped: Option<String> = None;
    loop {
        if stopped.is_none() && crate::interrupt::requested() {
            stopped = Some("interrupted: no new target was started".into());
        }
        while stopped.is_none() && running.len() < plan.parallel {
            let Some(slot) = queue.pop_front() else { break };
            match spawn(&exe, &base_args, &specs[slot], args.connect_timeout) {
                Ok((child, stdout, stderr)) => {
                    // Ctrl-C reaches it through us (its own process group), once or twice.
                    crate::interrupt::track_child(child.id());
                    running.push(Running {
                        slot,
                        child,
                        started: Instant::now(),
                        stdout,
                        stderr,
                    });
                }
                Err(e) => {
                    let entry = &mut entries[slot];
                    entry.outcome = TargetOutcome::Failed;
                    entry.exit_code = Some(Exit::Failed.code());
                    entry.duration_ms = Some(0);
                    entry.error = Some(ErrorBody::from(&e));
                    failures += 1;
                    progress.add_items(1);
                    // A run that could not even start counts for the stop rules as any
                    // failed target does.
                    if stopped.is_none() && !crate::interrupt::requested() {
                        stopped =
                            stop_reason(entry.canary, entry.index, failures, &plan.stop_after);
                        if let Some(reason) = &stopped {
                            crate::log::warn(&format!(
                                "{reason}; waiting for the {} running",
                                running.len()
                            ));
                        }
                    }
                }
            }
        }
        if running.is_empty() {
            if stopped.is_none() && in_canary && queue.is_empty() {
                in_canary = false;
                queue.append(&mut rest);
                continue;
            }
            if stopped.is_some() || queue.is_empty() {
                break;
            }
        }
        std::thread::sleep(POLL);
        let mut announce = false;
        let mut still = Vec::with_capacity(running.len());
        for mut r in running {
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    crate::interrupt::untrack_child(r.child.id());
                    let exit = status.code().unwrap_or(match status.signal() {
                        Some(libc::SIGINT | libc::SIGTERM) => Exit::Interrupted.code(),
                        _ => Exit::Failed.code(),
                    });
                    let stdout = r.stdout.join().unwrap_or_default();
                    let tail = r.stderr.join().unwrap_or_default();
                    let entry = &mut entries[r.slot];
                    finish(entry, exit, &stdout, &tail, r.started.elapsed());
                    progress.add_items(1);
                    if entry.outcome.is_failure() {
                        failures += 1;
                        crate::log::warn(&format!(
                            "#{} {}: {} (exit {exit}){}",
                            entry.index,
                            entry.target,
                            entry.outcome.as_str().replace('_', " "),
                            entry
                                .error
                                .as_ref()
                                .map(|e| format!(": {}", e.message))
                                .unwrap_or_default()
                        ));
                        if stopped.is_none() && !crate::interrupt::requested() {
                            stopped =
                                stop_reason(entry.canary, entry.index, failures, &plan.stop_after);
                            announce = stopped.is_some();
                        }
                    }
                }
                Ok(None) => still.push(r),
                Err(e) => {
                    crate::log::error(&format!("cannot wait for a target's run: {e}"));
                    still.push(r);
                }
            }
        }
        running = still;
        if let Some(reason) = stopped.as_ref().filter(|_| announce) {
            crate::log::warn(&format!(
                "{reason}; waiting for the {} running",
                running.len()
            ));
        }
        progress.set_note(format!(
            "{failures} failed, {} running{}",
            running.len(),
            if stopped.is_some() { ", stopping" } else { "" }
        ));
    }
    progress.finish();

    let summary = FleetResult::summarize(&entries, stopped);
    let result = FleetResult {
        fleet: FleetRun {
            source: plan.list.source.clone(),
            listed: plan.listed,
            shard: args.shard.map(|s| s.to_string()),
            parallel: plan.parallel,
            canary,
            stop_after_failures: match plan.stop_after {
                StopAfter::Failures(n) => Some(n),
                StopAfter::Never => None,
            },
        },
        summary,
        targets: entries,
    };
    verdict(result)
}

/// The fleet's own outcome: the most serious target's exit code (see [`severity`]).
fn verdict(result: FleetResult) -> std::result::Result<Outcome, Failure> {
    let s = &result.summary;
    crate::log::info(&format!(
        "{} target(s): {} ok, {} need attention, {} failed, {} unreachable, {} interrupted, {} not started",
        s.total, s.ok, s.attention, s.failed, s.unreachable, s.interrupted, s.not_started
    ));
    if crate::interrupt::requested() {
        return Err(Failure::with_result(Error::Interrupted, result));
    }
    let worst = result
        .targets
        .iter()
        .filter(|t| t.exit_code.is_some())
        .max_by_key(|t| (t.exit_code.map(severity), std::cmp::Reverse(t.index)));
    let Some(worst) = worst.filter(|w| !matches!(w.exit_code, Some(0 | 3))) else {
        let attention = s.attention > 0;
        return Ok(if attention {
            Outcome::attention(result)
        } else {
            Outcome::ok(result)
        });
    };
    let exit_code = worst.exit_code.unwrap_or(1);
    let code = worst
        .error
        .as_ref()
        .and_then(|e| ErrorCode::parse(&e.code))
        .filter(|c| c.exit().code() == exit_code)
        .or_else(|| {
            ErrorCode::ALL
                .iter()
                .copied()
                .find(|c| c.exit().code() == exit_code)
        })
        .unwrap_or(ErrorCode::Internal);
    let failed = s.failed + s.unreachable + s.interrupted;
    let not_started = if s.not_started > 0 {
        format!(", {} not started", s.not_started)
    } else {
        String::new()
    };
    let (message, hint) = match &worst.error {
        Some(e) => (e.message.clone(), e.hint.clone()),
        None => (format!("exit {exit_code}"), String::new()),
    };
    let error = Error::Fleet {
        code,
        message: format!(
            "{failed} of {} target(s) failed{not_started}; the most serious, #{} {}: {message}",
            s.total, worst.index, worst.target
        ),
        hint: format!(
            "{}{}result.targets has each target's outcome and error; fix them and run the fleet again",
            hint,
            if hint.is_empty() { "" } else { ". " }
        ),
        index: worst.index,
        target: worst.target.clone(),
    };
    Err(Failure::with_result(error, result))
}

/// Fills `entry` from its run's exit code and stdout.
fn finish(entry: &mut FleetTarget, exit: i32, stdout: &[u8], tail: &[String], took: Duration) {
    entry.exit_code = Some(exit);
    entry.duration_ms = Some(took.as_millis() as u64);
    entry.outcome = TargetOutcome::of_exit(exit);
    match serde_json::from_slice::<serde_json::Value>(stdout) {
        Ok(serde_json::Value::Object(mut envelope)) => {
            entry.result = envelope.remove("result").unwrap_or_default();
            if let Some(serde_json::Value::Array(w)) = envelope.remove("warnings") {
                entry.warnings = w;
            }
            entry.error = envelope
                .remove("error")
                .and_then(|e| serde_json::from_value(e).ok());
        }
        _ => {
            let last = tail.last().cloned().unwrap_or_default();
            entry.error = Some(ErrorBody {
                code: if exit == Exit::Interrupted.code() {
                    ErrorCode::Interrupted.as_str().into()
                } else {
                    ErrorCode::Internal.as_str().into()
                },
                message: crate::redact::scrub(&format!(
                    "its run printed no JSON document (exit {exit}){}{last}",
                    if last.is_empty() { "" } else { "; it said: " }
                )),
                hint: "run the command on this target alone (--database-url) to see what happened"
                    .into(),
                details: None,
            });
        }
    }
}

/// The arguments of every target's run: the fleet flags and the stdout-shaping ones
/// (`--format`, `--notify`, `--notify-on`, `--quiet`) removed, `--format json --quiet`
/// first. The fleet prints the one document and sends the one notification.
fn target_args(raw: Vec<OsString>) -> Vec<OsString> {
    let valued: Vec<&str> = FLEET_FLAGS
        .iter()
        .copied()
        .chain(["--format", "--notify", "--notify-on"])
        .collect();
    let mut out: Vec<OsString> = ["--format", "json", "--quiet"].map(OsString::from).to_vec();
    let mut it = raw.into_iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            out.push(arg);
            out.extend(it);
            break;
        }
        if valued.contains(&text.as_ref()) {
            it.next();
            continue;
        }
        if valued.iter().any(|f| text.starts_with(&format!("{f}=")))
            || text == "--quiet"
            || text == "-q"
        {
            continue;
        }
        out.push(arg);
    }
    out
}

type Pipes = (Child, JoinHandle<Vec<u8>>, JoinHandle<Vec<String>>);

/// Starts the command on one target: its URL in [`TARGET_ENV`], its own process group
/// (a terminal's Ctrl-C reaches the fleet, which passes it on once), stdin closed.
fn spawn(
    exe: &std::path::Path,
    base: &[OsString],
    spec: &FleetTargetSpec,
    connect_timeout: Option<Duration>,
) -> Result<Pipes> {
    let settings = ConnectionSettings::from_url(&spec.url)?;
    // `--connect-timeout`: the URL's own connect_timeout wins (whole seconds, at least 1).
    let url = match connect_timeout {
        Some(t) if !spec.url.contains("connect_timeout=") => targets::with_query_param(
            &spec.url,
            "connect_timeout",
            &t.as_secs().max(1).to_string(),
        ),
        _ => spec.url.clone(),
    };
    let name = slug(&settings);
    let args: Vec<OsString> = base
        .iter()
        .map(|a| match a.to_str() {
            Some(text) if text.contains(TARGET_PLACEHOLDER) => {
                OsString::from(text.replace(TARGET_PLACEHOLDER, &name))
            }
            _ => a.clone(),
        })
        .collect();
    let mut child = Command::new(exe)
        .args(&args)
        .env(TARGET_ENV, &url)
        .env_remove(crate::notify::ENV_VAR_NOTIFY_URL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("start the command for a target", exe, e))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let label = format!("#{} {}", spec.index, spec.redacted);
    let err = std::thread::spawn(move || {
        let mut tail: VecDeque<String> = VecDeque::new();
        for line in BufReader::new(stderr)
            .lines()
            .map_while(std::result::Result::ok)
        {
            let line = crate::redact::scrub(&line);
            eprintln!("{label}: {line}");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail.into_iter().collect()
    });
    Ok((child, out, err))
}

/// Why the fleet stops starting targets after a failure of target `index` (the
/// `failures`-th), if it does: a failed canary, or `--stop-after-failures` reached.
fn stop_reason(
    canary: bool,
    index: usize,
    failures: usize,
    stop_after: &StopAfter,
) -> Option<String> {
    if canary {
        return Some(format!(
            "canary target #{index} failed: the targets after the canary were not started"
        ));
    }
    match stop_after {
        StopAfter::Failures(m) if failures >= *m => Some(format!(
            "{failures} target(s) failed (--stop-after-failures {m}): no new target was started"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_canary_or_the_mth_failure_stops_the_fleet_whatever_failed() {
        // The same rule for a run that failed and one that could not be started.
        assert!(stop_reason(true, 2, 1, &StopAfter::Never).is_some_and(|r| r.contains("#2")));
        assert!(stop_reason(false, 5, 2, &StopAfter::Failures(2)).is_some());
        assert_eq!(stop_reason(false, 5, 1, &StopAfter::Failures(2)), None);
        assert_eq!(stop_reason(false, 5, 40, &StopAfter::Never), None);
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_target_run_gets_no_fleet_flag_and_prints_json_quietly() {
        let args = target_args(os(&[
            "deploy",
            "--targets",
            "t.txt",
            "--parallel=8",
            "--format",
            "text",
            "-q",
            "--yes",
            "--shard",
            "1/3",
            "--to",
            "s3://b/{target}",
            "--",
            "--targets",
        ]));
        assert_eq!(
            args,
            os(&[
                "--format",
                "json",
                "--quiet",
                "deploy",
                "--yes",
                "--to",
                "s3://b/{target}",
                "--",
                "--targets"
            ])
        );
    }
}
