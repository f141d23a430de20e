//! Backup retention: which backups of one database a prune keeps, and why.
//!
//! The rules are the flags of `pgward-backup prune` and the `[env.NAME.retention]` table of
//! pgward.toml — one type, [`Retention`], is both, so a rule has one name everywhere:
//!
//! - `keep_last N`: the N newest backups;
//! - `keep_days D`: every backup younger than D days;
//! - `keep_daily N`, `keep_weekly N`, `keep_monthly N` (grandfather-father-son): the newest
//!   backup of each of the N most recent calendar days, ISO weeks, months that have a
//!   backup, in UTC. A day, week or month without a backup is skipped, not counted, as
//!   Borg, restic and pgBackRest users expect: seven daily backups are kept even when the
//!   cron missed a night. Each rule counts on its own, as restic's do: this week's newest
//!   backup, kept as a daily one, is also this week's weekly one.
//!
//! A backup is kept when any rule keeps it; the first rule that does, in the order above,
//! is the reason reported. The newest verified backup is kept whatever the rules say: that
//! is [`crate::archive::prune`]'s rule, not a setting.

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Retention rules: `pgward-backup prune`'s flags, and an environment's `retention` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep the N newest backups
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    /// Keep backups younger than D days
    #[arg(long, value_name = "D")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u64>,
    /// Keep the newest backup of each of the N most recent days with a backup (UTC)
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<usize>,
    /// Keep the newest backup of each of the N most recent ISO weeks with a backup
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<usize>,
    /// Keep the newest backup of each of the N most recent months with a backup
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<usize>,
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    /// One of the `keep_last` newest.
    KeepLast,
    /// Younger than `keep_days`.
    KeepDays,
    /// The newest of one of the `keep_daily` most recent days.
    KeepDaily,
    /// The newest of one of the `keep_weekly` most recent ISO weeks.
    KeepWeekly,
    /// The newest of one of the `keep_monthly` most recent months.
    KeepMonthly,
    /// The newest verified backup, which prune never removes.
    NewestVerified,
}

impl KeepReason {
    /// The rule's name, as the JSON spells it (`keep-last`, ..., `newest-verified`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::KeepLast => "keep-last",
            KeepReason::KeepDays => "keep-days",
            KeepReason::KeepDaily => "keep-daily",
            KeepReason::KeepWeekly => "keep-weekly",
            KeepReason::KeepMonthly => "keep-monthly",
            KeepReason::NewestVerified => "newest-verified",
        }
    }
}

/// The calendar period a grandfather-father-son rule keeps one backup of.
#[derive(Debug, Clone, Copy)]
enum Period {
    Day,
    IsoWeek,
    Month,
}

impl Period {
    /// The period `at` falls in, as a comparable key (UTC).
    fn key(self, at: DateTime<Utc>) -> (i32, u32) {
        match self {
            Period::Day => (at.year(), at.ordinal()),
            Period::IsoWeek => {
                let week = at.iso_week();
                (week.year(), week.week())
            }
            Period::Month => (at.year(), at.month()),
        }
    }
}

impl Retention {
    /// Whether no rule is set (a prune without rules would keep only the newest verified
    /// backup, so it is refused).
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }

    /// For each backup of one database, given by its creation time NEWEST FIRST, the rule
    /// that keeps it at `now`, or `None` when no rule does.
    pub fn decide(
        &self,
        created_newest_first: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Vec<Option<KeepReason>> {
        // Beyond what chrono can count, keep_days keeps everything.
        let keep_days = self
            .keep_days
            .map(|d| i64::try_from(d).ok().and_then(TimeDelta::try_days));
        let daily = newest_per_period(created_newest_first, Period::Day, self.keep_daily);
        let weekly = newest_per_period(created_newest_first, Period::IsoWeek, self.keep_weekly);
        let monthly = newest_per_period(created_newest_first, Period::Month, self.keep_monthly);
        created_newest_first
            .iter()
            .enumerate()
            .map(|(rank, &at)| {
                if self.keep_last.is_some_and(|n| rank < n) {
                    Some(KeepReason::KeepLast)
                } else if keep_days.is_some_and(|d| d.is_none_or(|d| now - at < d)) {
                    Some(KeepReason::KeepDays)
                } else if daily[rank] {
                    Some(KeepReason::KeepDaily)
                } else if weekly[rank] {
                    Some(KeepReason::KeepWeekly)
                } else if monthly[rank] {
                    Some(KeepReason::KeepMonthly)
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Marks the newest backup of each of the `count` most recent periods that have one.
fn newest_per_period(
    created_newest_first: &[DateTime<Utc>],
    period: Period,
    count: Option<usize>,
) -> Vec<bool> {
    let mut marks = vec![false; created_newest_first.len()];
    let Some(count) = count else { return marks };
    let mut last_key = None;
    let mut periods = 0;
    for (i, &at) in created_newest_first.iter().enumerate() {
        let key = period.key(at);
        if last_key == Some(key) {
            continue;
        }
        if periods == count {
            break;
        }
        last_key = Some(key);
        periods += 1;
        marks[i] = true;
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    /// A backup every day at 03:00 and 15:00 for `days` days ending 2026-12-05, newest first.
    fn twice_daily(days: i64) -> Vec<DateTime<Utc>> {
        let end = at(2026, 12, 5, 15);
        (0..days * 2)
            .map(|i| end - TimeDelta::hours(12 * i))
            .collect()
    }

    fn kept(rules: &Retention, times: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        rules
            .decide(times, now)
            .into_iter()
            .zip(times)
            .filter_map(|(r, t)| r.map(|_| *t))
            .collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day() {
        let times = twice_daily(30);
        let rules = Retention {
            keep_daily: Some(7),
            ..Retention::default()
        };
        let kept = kept(&rules, &times, at(2026, 12, 5, 16));
        assert_eq!(kept.len(), 7);
        for (i, t) in kept.iter().enumerate() {
            // The 15:00 backup of each day from 5 December back to 29 November.
            assert_eq!(*t, at(2026, 12, 5, 15) - TimeDelta::days(i as i64));
        }
    }

    #[test]
    fn a_day_without_a_backup_is_skipped_not_counted() {
        // 5, 4, (3 missed), 2, 1 December.
        let times = vec![
            at(2026, 12, 5, 3),
            at(2026, 12, 4, 3),
            at(2026, 12, 2, 3),
            at(2026, 12, 1, 3),
        ];
        let rules = Retention {
            keep_daily: Some(3),
            ..Retention::default()
        };
        assert_eq!(
            kept(&rules, &times, at(2026, 12, 5, 4)),
            vec![at(2026, 12, 5, 3), at(2026, 12, 4, 3), at(2026, 12, 2, 3)]
        );
    }

    #[test]
    fn weekly_and_monthly_take_the_newest_of_each_iso_week_and_month() {
        let times = twice_daily(400);
        let rules = Retention {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            ..Retention::default()
        };
        let now = at(2026, 12, 5, 16);
        let decided = rules.decide(&times, now);
        let kept: Vec<(DateTime<Utc>, KeepReason)> = decided
            .iter()
            .zip(&times)
            .filter_map(|(r, t)| r.map(|r| (*t, r)))
            .collect();
        let of = |reason| {
            kept.iter()
                .filter(|(_, r)| *r == reason)
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
        };
        assert_eq!(of(KeepReason::KeepDaily).len(), 7);
        // A week or month whose newest backup a shorter rule kept already counts for the
        // longer rule too: 4 weeks in all, 12 months in all.
        let weekly = of(KeepReason::KeepWeekly);
        assert!(!weekly.is_empty());
        for t in &weekly {
            // The newest of an ISO week is its Sunday's 15:00 backup.
            assert_eq!((t.weekday(), t.hour()), (chrono::Weekday::Sun, 15), "{t}");
        }
        let weeks: std::collections::BTreeSet<(i32, u32)> = kept
            .iter()
            .filter(|(_, r)| matches!(r, KeepReason::KeepDaily | KeepReason::KeepWeekly))
            .map(|(t, _)| (t.iso_week().year(), t.iso_week().week()))
            .collect();
        assert_eq!(weeks.len(), 4, "{weeks:?}");
        for t in of(KeepReason::KeepMonthly) {
            // The newest of a month is its last day's 15:00 backup.
            assert_ne!((t + TimeDelta::days(1)).month(), t.month(), "{t}");
            assert_eq!(t.hour(), 15, "{t}");
        }
        // 12 months with a backup: December (a daily), November … January 2026.
        let months: std::collections::BTreeSet<(i32, u32)> = kept
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r,
                    KeepReason::KeepMonthly | KeepReason::KeepDaily | KeepReason::KeepWeekly
                )
            })
            .map(|(t, _)| (t.year(), t.month()))
            .collect();
        assert_eq!(months.len(), 12, "{months:?}");
        assert!(
            months.contains(&(2026, 1)) && !months.contains(&(2025, 12)),
            "{months:?}"
        );
    }

    #[test]
    fn keep_last_and_keep_days_come_first_and_huge_values_keep_everything() {
        let times = twice_daily(10);
        let now = at(2026, 12, 5, 16);
        let rules = Retention {
            keep_last: Some(3),
            keep_days: Some(2),
            keep_daily: Some(5),
            ..Retention::default()
        };
        let decided = rules.decide(&times, now);
        assert_eq!(&decided[..3], &[Some(KeepReason::KeepLast); 3]);
        assert_eq!(decided[3], Some(KeepReason::KeepDays));
        let huge = Retention {
            keep_days: Some(u64::MAX),
            ..Retention::default()
        };
        assert!(huge
            .decide(&times, now)
            .iter()
            .all(|r| *r == Some(KeepReason::KeepDays)));
        assert!(Retention::default().is_empty() && !huge.is_empty());
        assert!(Retention::default()
            .decide(&times, now)
            .iter()
            .all(Option::is_none));
    }
}
