//! Progress of long work on stderr: an indicatif bar (bytes or items, rows, rate, ETA) on
//! a terminal, otherwise a timestamped log line every 10 seconds
//! (`PGWARD_PROGRESS_INTERVAL` seconds), so cron and CI logs show the work is alive and
//! how far it got. Nothing at all under `--quiet`.

use std::io::{IsTerminal, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a progress line is logged when stderr is not a terminal (docs/contract.md §1),
/// unless [`INTERVAL_ENV`] says otherwise.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Seconds between two progress lines when stderr is not a terminal (docs/config.md).
pub const INTERVAL_ENV: &str = "PGWARD_PROGRESS_INTERVAL";

/// What the counter of a [`Progress`] counts.
#[derive(Clone, Copy)]
enum Unit {
    /// Bytes, shown as KiB/MiB/GiB, with a count of rows beside them.
    Bytes,
    /// Things with this plural name (`migrations`).
    Items(&'static str),
}

/// Counters of one long task, shown as it runs.
pub struct Progress {
    done: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// A few words shown after the counters (`2 failed, 4 running`), see [`Progress::set_note`].
    note: Arc<Mutex<String>>,
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `label` with `total_bytes` expected (an estimate is fine).
    pub fn start(label: &str, total_bytes: u64) -> Progress {
        Progress::begin(label, total_bytes, Unit::Bytes)
    }

    /// Starts showing `label` with `total` things called `unit` to do (`migrations`);
    /// count them with [`Progress::add_items`].
    pub fn start_counting(label: &str, total: u64, unit: &'static str) -> Progress {
        Progress::begin(label, total, Unit::Items(unit))
    }

    fn begin(label: &str, total: u64, unit: Unit) -> Progress {
        if crate::log::is_quiet() {
            return Progress {
                done: Arc::default(),
                rows: Arc::default(),
                stop: Arc::default(),
                note: Arc::default(),
                bar: None,
                ticker: None,
            };
        }
        if std::io::stderr().is_terminal() {
            return Progress::bar(label, total, unit);
        }
        Progress::logging(label, total, unit, interval(), |line| {
            crate::log::info(&line)
        })
    }

    /// The indicatif bar, for a terminal.
    fn bar(label: &str, total: u64, unit: Unit) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let bar_part = if crate::log::colour() {
            "{bar:30.cyan/blue}"
        } else {
            "{bar:30}"
        };
        let template = match unit {
            Unit::Bytes => format!(
                "{{prefix}} [{bar_part}] {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} ETA {{eta}} {{msg}}"
            ),
            Unit::Items(name) => format!(
                "{{prefix}} [{bar_part}] {{pos}}/{{len}} {name} {{per_sec}} ETA {{eta}} {{msg}}"
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        let note: Arc<Mutex<String>> = Arc::default();
        let (d, r, s, handle) = (done.clone(), rows.clone(), stop.clone(), bar.clone());
        let n = note.clone();
        let ticker = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                handle.set_position(d.load(Ordering::Relaxed));
                match unit {
                    Unit::Bytes => {
                        handle.set_message(format!("{} rows", r.load(Ordering::Relaxed)))
                    }
                    Unit::Items(_) => handle.set_message(read_note(&n)),
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Progress {
            done,
            rows,
            stop,
            note,
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// Progress as a line handed to `log` every `interval`, for stderr that is no
    /// terminal (cron logs, CI): done and expected, rows, the average rate and the time
    /// left at that rate.
    fn logging(
        label: &str,
        total: u64,
        unit: Unit,
        interval: Duration,
        log: impl Fn(String) + Send + 'static,
    ) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let note: Arc<Mutex<String>> = Arc::default();
        let (d, r, s, label) = (done.clone(), rows.clone(), stop.clone(), label.to_string());
        let n = note.clone();
        let ticker = std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = interval;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100).min(interval));
                if started.elapsed() >= next {
                    next += interval;
                    let line = progress_line(
                        &label,
                        unit,
                        d.load(Ordering::Relaxed),
                        total,
                        r.load(Ordering::Relaxed),
                        started.elapsed(),
                    );
                    let note = read_note(&n);
                    log(if note.is_empty() {
                        line
                    } else {
                        format!("{line}; {note}")
                    });
                }
            }
        });
        Progress {
            done,
            rows,
            stop,
            note,
            bar: None,
            ticker: Some(ticker),
        }
    }

    /// Counts `bytes` more bytes.
    pub fn add_bytes(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `items` more of what [`Progress::start_counting`] counts.
    pub fn add_items(&self, items: u64) {
        self.done.fetch_add(items, Ordering::Relaxed);
    }

    /// Counts `rows` more rows.
    pub fn add_rows(&self, rows: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Shows `note` after the counters from now on (on the bar, and at the end of each
    /// logged line): what the counters do not say, such as `1 failed, 4 running`.
    pub fn set_note(&self, note: impl Into<String>) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = note.into();
    }

    /// Stops showing progress.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn read_note(note: &Mutex<String>) -> String {
    note.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A reader that counts the bytes read through it into a [`Progress`].
pub struct Counted<'p, R> {
    inner: R,
    progress: Option<&'p Progress>,
}

impl<'p, R> Counted<'p, R> {
    /// `inner`, counted into `progress` when there is one.
    pub fn new(inner: R, progress: Option<&'p Progress>) -> Self {
        Counted { inner, progress }
    }
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = self.progress {
            p.add_bytes(n as u64);
        }
        Ok(n)
    }
}

/// `backup: 120.00 MiB of ~300.00 MiB, 1234 rows, 40.00 MiB/s, ETA 5s` (bytes) or
/// `replay: 12 of 434 migrations, 3.0/s, ETA 2m` (items): the line logged when stderr is
/// no terminal.
fn progress_line(
    label: &str,
    unit: Unit,
    done: u64,
    total: u64,
    rows: u64,
    elapsed: Duration,
) -> String {
    let per_sec = done as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = if per_sec > 0.0 && done < total {
        format!(
            ", ETA {}",
            HumanDuration(Duration::from_secs_f64((total - done) as f64 / per_sec))
        )
    } else {
        String::new()
    };
    match unit {
        Unit::Bytes => format!(
            "{label}: {} of ~{}, {rows} rows, {}/s{eta}",
            HumanBytes(done),
            HumanBytes(total),
            HumanBytes(per_sec as u64)
        ),
        Unit::Items(name) => format!("{label}: {done} of {total} {name}, {per_sec:.1}/s{eta}"),
    }
}

/// The interval of the progress lines: [`INTERVAL_ENV`] seconds (fractions allowed, at
/// least 0.1) when it is set to a number, else 10 seconds; a value that is no number is
/// reported once and the default kept.
fn interval() -> Duration {
    static INTERVAL: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *INTERVAL.get_or_init(read_interval)
}

fn read_interval() -> Duration {
    let Some(value) = std::env::var_os(INTERVAL_ENV).filter(|v| !v.is_empty()) else {
        return LOG_INTERVAL;
    };
    let text = value.to_string_lossy();
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Duration::from_secs_f64(seconds.max(0.1))
        }
        _ => {
            crate::log::warn(&format!(
                "{INTERVAL_ENV}={text} is not a number of seconds above 0: progress lines every {} s; set it to e.g. 30, or unset it",
                LOG_INTERVAL.as_secs()
            ));
            LOG_INTERVAL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn without_a_terminal_a_line_is_logged_every_interval_until_finish() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let progress = Progress::logging(
            "backup",
            4 << 20,
            Unit::Bytes,
            Duration::from_millis(40),
            move |l| sink.lock().expect("lines").push(l),
        );
        progress.add_bytes(2 << 20);
        progress.add_rows(1234);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines.lock().expect("lines").len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        progress.finish();
        let logged = lines.lock().expect("lines").clone();
        assert!(logged.len() >= 2, "a line per interval: {logged:?}");
        assert!(
            logged[0].starts_with("backup: 2.00 MiB of ~4.00 MiB, 1234 rows, "),
            "{logged:?}"
        );
        assert!(logged[0].contains("/s, ETA "), "{logged:?}");
        let after = logged.len();
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            lines.lock().expect("lines").len(),
            after,
            "nothing is logged once finished"
        );
    }

    #[test]
    fn counted_lines_say_how_many_of_how_many_the_rate_and_the_time_left() {
        let line = progress_line(
            "replay",
            Unit::Items("migrations"),
            10,
            40,
            0,
            Duration::from_secs(5),
        );
        assert_eq!(line, "replay: 10 of 40 migrations, 2.0/s, ETA 15 seconds");
        // Past an estimated total there is no time left to tell.
        let line = progress_line(
            "backup",
            Unit::Bytes,
            3 << 20,
            2 << 20,
            7,
            Duration::from_secs(1),
        );
        assert_eq!(line, "backup: 3.00 MiB of ~2.00 MiB, 7 rows, 3.00 MiB/s");
    }
}
