//! Several copies of every backup: `backups = ["/var/backups/pg", "s3://bucket/prefix"]`
//! in pgward.toml, or `--to`/`--from` repeated.
//!
//! - A backup is written to the first location as ever, then [`replicate`] copies it to
//!   each other one: every file streamed from the first copy into a new backup of the same
//!   id, its SHA-256 and size computed on the bytes as they are written to the copy and
//!   compared with the manifest's, the sizes stored checked again before the manifest (the
//!   same bytes) is written last. A copy that fails is never published and what it wrote
//!   is removed (a failure of the removal itself leaves a leftover that prune removes);
//!   the first copy stays complete and restorable.
//! - Reading ([`Copies`] as a [`Storage`]) takes, for each backup, the first location that
//!   holds a complete copy (one with its manifest): `list` shows every backup complete in
//!   any location with the locations holding it, and `restore` reads it from the first of
//!   them, so a backup whose first copy is gone (a lost disk) restores from the next, and
//!   restore reads the next copy when the first fails its checks before the target is
//!   touched. A location after the first that cannot be opened or listed (S3 down) leaves
//!   the others usable; the commands say so.
//! - `verify` and `prune` act on each location apart ([`Copies::members`]): each copy is
//!   checked and gets its own `verified.json`, and each location is pruned by its own
//!   listing (its own newest verified copy kept, its own leftovers removed).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{write_error, BackupWriter, Storage};
use crate::archive::manifest::{BackupManifest, ManifestFile, MANIFEST_FILE};
use crate::error::{Error, Result};

/// The locations of a command: one, or the copies of each backup in order.
pub struct Copies {
    members: Vec<Box<dyn Storage>>,
    /// Locations after the first that could not be opened (S3 down): (location, why).
    unopened: Vec<(String, String)>,
    /// Backup id -> the members holding a complete copy, in order, as last listed or probed.
    holders: Mutex<HashMap<String, Vec<usize>>>,
    /// Members that could not be listed: (location, what went wrong).
    unavailable: Mutex<Vec<(String, String)>>,
}

impl Copies {
    /// The locations, the one written first first (at least one), and those after it
    /// that could not be opened, with why.
    pub fn new(members: Vec<Box<dyn Storage>>, unopened: Vec<(String, String)>) -> Copies {
        assert!(!members.is_empty(), "a backup needs a location");
        Copies {
            members,
            unavailable: Mutex::new(unopened.clone()),
            unopened,
            holders: Mutex::new(HashMap::new()),
        }
    }

    /// The locations that could not be opened, with why: their copies can be neither
    /// written nor checked in this run.
    pub fn unopened(&self) -> &[(String, String)] {
        &self.unopened
    }

    /// Every location, in order.
    pub fn members(&self) -> impl Iterator<Item = &dyn Storage> {
        self.members.iter().map(|m| m.as_ref())
    }

    /// How many locations.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Never: a `Copies` has at least one location.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every location's name, in order.
    pub fn locations(&self) -> Vec<String> {
        self.members().map(|m| m.location()).collect()
    }

    /// The locations that could not be read (or opened) so far in this run.
    pub fn unreadable(&self) -> Vec<String> {
        lock(&self.unavailable)
            .iter()
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// A `BACKUP_COPY_UNAVAILABLE` warning for each location that could not be read since
    /// the last call while the others could: the command went on with those.
    pub fn unavailable_warnings(&self) -> Vec<(crate::codes::WarningCode, String)> {
        std::mem::take(&mut *lock(&self.unavailable))
            .into_iter()
            .map(|(location, why)| {
                (
                    crate::codes::WarningCode::BackupCopyUnavailable,
                    format!("the backup location {location} could not be read ({why}); its copies were left out, the other locations were used"),
                )
            })
            .collect()
    }

    /// The members holding a complete copy of `id`: from the last listing, else found by
    /// reading each one's manifest (a location that cannot answer holds none).
    fn holder_indexes(&self, id: &str) -> Vec<usize> {
        if self.members.len() == 1 {
            return vec![0];
        }
        if let Some(found) = lock(&self.holders).get(id) {
            return found.clone();
        }
        let found: Vec<usize> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| holds_complete(m.as_ref(), id).unwrap_or(false))
            .map(|(i, _)| i)
            .collect();
        lock(&self.holders).insert(id.to_string(), found.clone());
        found
    }

    /// Stops reading backup `id` from `location` for the rest of the run (its copy is
    /// damaged): the next location holding it is read instead. Whether there was one.
    pub fn skip_copy(&self, id: &str, location: &str) -> bool {
        let mut found = self.holder_indexes(id);
        found.retain(|&i| self.members[i].location() != location);
        let left = !found.is_empty();
        lock(&self.holders).insert(id.to_string(), found);
        left
    }

    /// The location backup `id` is read from: the first holding a complete copy, else the
    /// first location (whose answer then says what is missing).
    fn reader(&self, id: &str) -> &dyn Storage {
        let first = self.holder_indexes(id).first().copied().unwrap_or(0);
        self.members[first].as_ref()
    }

    /// The location backup `id` is read from (see [`Copies::skip_copy`]).
    pub fn location_of(&self, id: &str) -> String {
        self.reader(id).location()
    }

    fn note_unavailable(&self, location: String, error: &Error) {
        let mut unavailable = lock(&self.unavailable);
        if !unavailable.iter().any(|(l, _)| *l == location) {
            unavailable.push((location, error.to_string()));
        }
    }

    /// Runs `each` on every member; fails only when every member failed (with the first
    /// error), else notes the failed ones as unavailable.
    fn ask_each<T>(&self, each: impl Fn(&dyn Storage) -> Result<T>) -> Result<Vec<(usize, T)>> {
        if self.members.len() == 1 {
            return Ok(vec![(0, each(self.members[0].as_ref())?)]);
        }
        let mut answered = Vec::new();
        let mut first_error = None;
        for (i, member) in self.members.iter().enumerate() {
            match each(member.as_ref()) {
                Ok(value) => answered.push((i, value)),
                Err(e) => {
                    self.note_unavailable(member.location(), &e);
                    first_error.get_or_insert(e);
                }
            }
        }
        match (answered.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(answered),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Storage for Copies {
    /// The first location: where backups are written.
    fn location(&self) -> String {
        self.members[0].location()
    }

    fn begin(&self, id: &str) -> Result<Box<dyn BackupWriter>> {
        lock(&self.holders).remove(id);
        self.members[0].begin(id)
    }

    fn list(&self) -> Result<Vec<String>> {
        let listed = self.ask_each(|m| m.list())?;
        let mut order = Vec::new();
        let mut holders: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, ids) in listed {
            for id in ids {
                let held = holders.entry(id.clone()).or_default();
                if held.is_empty() {
                    order.push(id);
                }
                held.push(i);
            }
        }
        *lock(&self.holders) = holders;
        Ok(order)
    }

    /// Leftovers of backups complete in no location (what `list` shows as incomplete; a
    /// killed copy's leftover beside a complete copy elsewhere is the prune of its own
    /// location's business).
    fn list_incomplete(&self) -> Result<Vec<(String, Option<u64>)>> {
        let leftovers = self.ask_each(|m| m.list_incomplete())?;
        if self.members.len() == 1 {
            return Ok(leftovers.into_iter().flat_map(|(_, found)| found).collect());
        }
        // Leftovers are few: each is asked about (from the last listing, else by its
        // manifest in each location) rather than every location listed again.
        let mut seen = std::collections::HashSet::new();
        Ok(leftovers
            .into_iter()
            .flat_map(|(_, found)| found)
            .filter(|(id, _)| seen.insert(id.clone()) && self.holder_indexes(id).is_empty())
            .collect())
    }

    fn open(&self, id: &str, path: &str) -> Result<Box<dyn Read + Send>> {
        self.reader(id).open(id, path)
    }

    fn read_small(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        self.reader(id).read_small(id, path)
    }

    fn write_small(&self, id: &str, path: &str, bytes: &[u8]) -> Result<()> {
        self.reader(id).write_small(id, path, bytes)
    }

    fn delete_small(&self, id: &str, path: &str) -> Result<()> {
        self.reader(id).delete_small(id, path)
    }

    /// Deletes the backup in the location it is read from only: each location is pruned
    /// on its own (see the module's docs), never through another's listing.
    fn delete(&self, id: &str) -> Result<()> {
        let reader = self.reader(id);
        lock(&self.holders).remove(id);
        reader.delete(id)
    }

    /// Whether any location is writing it; a location that cannot answer may be (and
    /// the others are still answered for): a leftover is never taken for abandoned on a
    /// guess.
    fn is_being_written(&self, id: &str) -> Result<bool> {
        Ok(self
            .members
            .iter()
            .any(|m| m.is_being_written(id).unwrap_or(true)))
    }

    fn storage_class(&self) -> Option<String> {
        self.members[0].storage_class()
    }

    fn holders(&self, id: &str) -> Vec<&dyn Storage> {
        self.holder_indexes(id)
            .into_iter()
            .map(|i| self.members[i].as_ref())
            .collect()
    }
}

/// One location of a backup as `backup` (and `copy`) left it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupCopy {
    /// The location.
    pub location: String,
    /// Whether it holds a complete copy (its manifest written last).
    pub complete: bool,
    /// Seconds the copy took (0 for the location the backup was written to).
    pub seconds: f64,
    /// Why the copy failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What was wrong with the damaged copy this one replaced (`copy --replace-damaged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_damaged: Option<String>,
}

/// What [`copy_backup`] did in one location.
#[derive(Debug, Clone, PartialEq)]
pub enum Copied {
    /// It wrote the copy.
    Made,
    /// The location held this very backup already (the same manifest): nothing written.
    AlreadyThere,
    /// The location held a damaged copy (what was wrong with it), which was deleted and
    /// copied again ([`copy_backup`] with `replace_damaged`).
    Replaced(String),
}

impl BackupCopy {
    /// The state of the copy to `location` that began at `started` and ended in `outcome`.
    fn of(location: String, started: Instant, outcome: &Result<Copied>) -> BackupCopy {
        BackupCopy {
            location,
            complete: outcome.is_ok(),
            seconds: match outcome {
                Ok(Copied::AlreadyThere) => 0.0,
                _ => (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            },
            problem: outcome.as_ref().err().map(|e| match e {
                // The location is in the row already: only what stopped it.
                Error::BackupCopyFailed { reason, .. } => reason.clone(),
                other => other.to_string(),
            }),
            replaced_damaged: match outcome {
                Ok(Copied::Replaced(damage)) => Some(damage.clone()),
                _ => None,
            },
        }
    }
}

/// Copies backup `id`, complete in the first location of `copies`, to every other one
/// (`jobs` files at a time). Returns the state of each copy (the first location's is not
/// among them) and the first failure: a copy that failed was removed.
pub fn replicate(copies: &Copies, id: &str, jobs: usize) -> (Vec<BackupCopy>, Result<()>) {
    let dests: Vec<&dyn Storage> = copies.members().skip(1).collect();
    let copied = copy_to(
        copies.members[0].as_ref(),
        &dests,
        &copies.unopened,
        id,
        jobs,
        false,
    );
    lock(&copies.holders).remove(id);
    copied
}

/// Copies backup `id` from `source` to each of `dests` that lacks it (or, with
/// `replace_damaged`, holds a damaged copy of it: [`copy_backup`]),
/// and counts each of `unopened` (locations that could not be opened, with why) as a
/// failed copy. Returns each location's state, in that order, and the first failure.
pub fn copy_to(
    source: &dyn Storage,
    dests: &[&dyn Storage],
    unopened: &[(String, String)],
    id: &str,
    jobs: usize,
    replace_damaged: bool,
) -> (Vec<BackupCopy>, Result<()>) {
    let mut states = Vec::new();
    let mut outcome = Ok(());
    for dest in dests {
        let started = Instant::now();
        let copied = copy_backup(source, *dest, id, jobs, replace_damaged);
        states.push(BackupCopy::of(dest.location(), started, &copied));
        if let Err(e) = copied {
            if outcome.is_ok() {
                outcome = Err(e);
            }
        }
    }
    for (location, why) in unopened {
        states.push(BackupCopy {
            location: location.clone(),
            complete: false,
            seconds: 0.0,
            problem: Some(why.clone()),
            replaced_damaged: None,
        });
        if outcome.is_ok() {
            outcome = Err(Error::BackupCopyFailed {
                id: id.to_string(),
                from: source.location(),
                location: location.clone(),
                reason: why.clone(),
            });
        }
    }
    (states, outcome)
}

/// Copies complete backup `id` from `source` to `dest` under the same id: files first
/// (checked on arrival against the manifest), the manifest's very bytes last. A `dest`
/// that holds this very backup already (the same manifest) is left as it is, unless
/// `replace_damaged` and its copy is damaged ([`Copied::Replaced`]); one holding another
/// backup under the id is a failure. On failure nothing is published in `dest`,
/// and what was written there is removed. A file of the source that does not match its
/// manifest is [`Error::BackupCorrupt`] of the source; anything else is
/// [`Error::BackupCopyFailed`].
pub fn copy_backup(
    source: &dyn Storage,
    dest: &dyn Storage,
    id: &str,
    jobs: usize,
    replace_damaged: bool,
) -> Result<Copied> {
    let failed = |reason: String| Error::BackupCopyFailed {
        id: id.to_string(),
        from: source.location(),
        location: dest.location(),
        reason,
    };
    let read = crate::archive::inventory::read_backup(source, id)?;
    let mut replaced = None;
    match dest
        .read_small(id, MANIFEST_FILE)
        .map_err(|e| failed(e.to_string()))?
    {
        Some(there) if crate::migrations::checksum(&there) == read.manifest_sha256 => {
            // With replace_damaged the copy there is checked, and a damaged one replaced,
            // but only from a source whose copy passes the same check: the only good files
            // of a backup are never deleted to make room for bad ones.
            let damaged = match replace_damaged {
                true => {
                    crate::log::info(&format!("checking the copy of {id} in {}", dest.location()));
                    damage_of(dest, &read.manifest, id, jobs)?
                }
                false => None,
            };
            let Some(damaged) = damaged else {
                crate::log::info(&format!("{} already holds {id}", dest.location()));
                return Ok(Copied::AlreadyThere);
            };
            if let Some(also) = damage_of(source, &read.manifest, id, jobs)? {
                return Err(Error::BackupCorrupt {
                    id: id.to_string(),
                    problems: format!(
                        "the copy in {} is damaged ({damaged}), and so is the copy in {} it would be replaced from ({also}): nothing was deleted",
                        dest.location(),
                        source.location()
                    ),
                    files: Vec::new(),
                });
            }
            crate::log::warn(&format!(
                "the copy of {id} in {} is damaged ({damaged}): replacing it with the copy in {}",
                dest.location(),
                source.location()
            ));
            dest.delete(id)
                .map_err(|e| failed(format!("its damaged copy could not be deleted: {e}")))?;
            replaced = Some(damaged);
        }
        Some(_) => {
            return Err(failed(format!(
                "{} already holds another backup named {id} (its manifest differs)",
                dest.location()
            )))
        }
        None => {}
    }
    crate::log::info(&format!("copying {id} to {}", dest.location()));
    let manifest: BackupManifest = read.manifest;
    let writer = dest.begin(id).map_err(|e| failed(e.to_string()))?;
    if writer.id() != id {
        // The id is taken there (a leftover, or another writer): a copy under another
        // name would not be the same backup.
        let taken = writer.id().to_string();
        writer.abort();
        return Err(failed(format!(
            "{} already has something under {id} that is not a complete backup: another copy being made now, or the leftover of an interrupted one (`pgward-backup list --from {}` shows it; prune removes a leftover once it is older than --leftover-age, 1h by default); it would have been stored as {taken}",
            dest.location(),
            dest.location()
        )));
    }
    let workers = jobs.clamp(1, manifest.files.len().max(1));
    let copied =
        crate::archive::workers::try_queue(vec![(); workers], &manifest.files, |(), file| {
            copy_file(source, writer.as_ref(), id, file)
        });
    if let Err(e) = copied.and_then(|_| crate::interrupt::check()) {
        writer.abort();
        return Err(match e {
            corrupt @ Error::BackupCorrupt { .. } => corrupt,
            Error::Interrupted => Error::Interrupted,
            other => failed(other.to_string()),
        });
    }
    writer
        .commit(&manifest.files, &read.manifest_bytes)
        .map_err(|e| failed(e.to_string()))?;
    Ok(match replaced {
        Some(damaged) => Copied::Replaced(damaged),
        None => Copied::Made,
    })
}

/// What is wrong with the copy of backup `id` (its `manifest`) in `storage`, checked file
/// by file (size and SHA-256), or None when every file matches.
fn damage_of(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    id: &str,
    jobs: usize,
) -> Result<Option<String>> {
    use crate::archive::verify::{check_files, require_all_ok, Depth};
    let files: Vec<&ManifestFile> = manifest.files.iter().collect();
    let checked = check_files(storage, manifest, &files, jobs, Depth::Checksums)
        .and_then(|checks| require_all_ok(id, &checks));
    match checked {
        Ok(()) => Ok(None),
        Err(Error::BackupCorrupt { problems, .. }) => Ok(Some(problems)),
        Err(e) => Err(e),
    }
}

/// Whether `storage` holds a complete copy of backup `id` (its manifest): a location not
/// written yet (no folder) holds none.
pub fn holds_complete(storage: &dyn Storage, id: &str) -> Result<bool> {
    Ok(storage.read_small(id, MANIFEST_FILE)?.is_some())
}

/// Streams one file into the copy and checks what arrived against the manifest.
fn copy_file(
    source: &dyn Storage,
    writer: &dyn BackupWriter,
    id: &str,
    file: &ManifestFile,
) -> Result<()> {
    crate::interrupt::check()?;
    let mut reader = source.open(id, &file.path)?;
    let mut out = writer.create(&file.path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::io("read", &file.path, e))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut out, &buf[..n]).map_err(|e| write_error(&file.path, e))?;
    }
    let arrived = out.finish()?;
    match crate::archive::verify::mismatch(file, arrived.size, &arrived.sha256) {
        None => Ok(()),
        Some(problem) => Err(crate::archive::verify::corrupt(
            id,
            &file.path,
            &format!(
                "{problem} as read from {} (so it was not copied to another location)",
                source.location()
            ),
        )),
    }
}
