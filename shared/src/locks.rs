//! PostgreSQL's table lock modes, and what each blocks: what the lint predicts a
//! statement takes and what `deploy --trace` measures it took are told in these terms.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// PostgreSQL's table lock modes, weakest first (the numbering of `lockdefs.h`, which is
/// also what `LOCK TABLE ... IN ... MODE` parses to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    AccessShare = 1,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockMode {
    /// The mode `LOCK TABLE` names by its number.
    pub fn from_number(n: i32) -> Option<LockMode> {
        Some(match n {
            1 => LockMode::AccessShare,
            2 => LockMode::RowShare,
            3 => LockMode::RowExclusive,
            4 => LockMode::ShareUpdateExclusive,
            5 => LockMode::Share,
            6 => LockMode::ShareRowExclusive,
            7 => LockMode::Exclusive,
            8 => LockMode::AccessExclusive,
            _ => return None,
        })
    }

    /// `SHARE ROW EXCLUSIVE`.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// The mode as `pg_locks.mode` spells it (`ShareRowExclusiveLock`).
    pub fn pg_locks_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The mode of its SQL name (`SHARE ROW EXCLUSIVE`), as [`LockMode::name`] spells it.
    pub fn from_name(name: &str) -> Option<LockMode> {
        ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mode `pg_locks.mode` names (`ShareRowExclusiveLock`); None for a mode that is
    /// not a table lock mode (`SIReadLock` of serializable transactions).
    pub fn from_pg_locks_name(name: &str) -> Option<LockMode> {
        ALL.into_iter().find(|m| m.pg_locks_name() == name)
    }

    /// Which work a session waits for while this lock is held: reads and writes, writes,
    /// or neither.
    pub fn blocks(self) -> Blocks {
        if self.blocks_reads() {
            Blocks::ReadsAndWrites
        } else if self.blocks_writes() {
            Blocks::Writes
        } else {
            Blocks::Nothing
        }
    }

    /// SHARE and stronger conflict with ROW EXCLUSIVE: writes wait while it is held, and
    /// while it is waited for.
    pub fn blocks_writes(self) -> bool {
        self >= LockMode::Share
    }

    /// ACCESS EXCLUSIVE conflicts with ACCESS SHARE: even plain SELECTs wait.
    pub fn blocks_reads(self) -> bool {
        self == LockMode::AccessExclusive
    }
}

/// Every mode, weakest first.
const ALL: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

/// In JSON, a mode is its SQL name (`"ACCESS EXCLUSIVE"`).
impl Serialize for LockMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Read back from a document (`pgward-report render` of a traced deploy).
impl<'de> Deserialize<'de> for LockMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        LockMode::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is no table lock mode")))
    }
}

/// What other sessions wait for while a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    /// Weaker modes: ordinary reads and writes go on (DDL may wait).
    Nothing,
    /// SHARE and stronger: INSERT, UPDATE, DELETE wait; reads go on.
    Writes,
    /// ACCESS EXCLUSIVE: even plain SELECTs wait.
    ReadsAndWrites,
}

impl Blocks {
    /// In words: `reads and writes`, `writes`, `nothing`.
    pub fn words(self) -> &'static str {
        match self {
            Blocks::ReadsAndWrites => "reads and writes",
            Blocks::Writes => "writes",
            Blocks::Nothing => "nothing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Blocks, LockMode, ALL};

    #[test]
    fn modes_round_trip_through_their_pg_locks_names_and_numbers() {
        for (i, mode) in ALL.into_iter().enumerate() {
            assert_eq!(
                LockMode::from_pg_locks_name(mode.pg_locks_name()),
                Some(mode)
            );
            assert_eq!(LockMode::from_number(i as i32 + 1), Some(mode));
            assert_eq!(LockMode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(LockMode::from_pg_locks_name("SIReadLock"), None);
        assert_eq!(LockMode::AccessExclusive.blocks(), Blocks::ReadsAndWrites);
        assert_eq!(LockMode::Share.blocks(), Blocks::Writes);
        assert_eq!(LockMode::ShareUpdateExclusive.blocks(), Blocks::Nothing);
    }
}
