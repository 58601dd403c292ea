//! The store's on-disk format: its version, kept twice (inside sled and in
//! a marker file beside it, which tells a damaged store from a new one),
//! and the migrations from each older version.

use super::*;

/// The on-disk format this build writes. Bump it with a migration in
/// `Store::migrate` when the layout or the record encoding changes.
///
/// - 1: the first.
/// - 2: job records name their `owner` and the user they run as
///   (`run_as`). A format-1 record reads as owner `anonymous` with no
///   user, which its next start fills in; the records themselves need no
///   rewrite. The version still moves so that an older jobq, which would
///   drop both fields when it rewrites a record (and with them who may act
///   on the job), refuses the store instead.
/// - 3: output chunks are keyed by attempt too, so every attempt's output
///   is kept; the migration moves format-2 chunks under their job's
///   current attempt.
/// - 4: an index of job numbers (`#` + number → id), for short references
///   (`jobq show 12`); the migration builds it from the records.
/// - 5: uploads are files (`stdin/<id>`), their records hold their
///   length, and a job fed one names it (`I` + job id → upload id); the
///   migration writes each unclaimed format-4 upload out to its file.
/// - 6: schedules (`S` + name), and jobs that name the schedule that made
///   them. Nothing to rewrite; the version moves so that an older jobq,
///   which would neither fire the schedules nor keep a job's `schedule`
///   when it rewrites the record, refuses the store.
/// - 7: job output is in files, `output/<job id>/<attempt>`, instead of
///   sled's `output` tree; the migration moves every chunk out.
pub const FORMAT_VERSION: u32 = 7;

/// The marker file beside sled's files: `jobq-store <version>`.
const MARKER: &str = "JOBQ_FORMAT";

pub(super) fn read_marker(dir: &Path) -> Result<Option<u32>, String> {
    let text = match std::fs::read_to_string(dir.join(MARKER)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("has an unreadable {MARKER} file: {e}")),
    };
    text.trim()
        .strip_prefix("jobq-store ")
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            format!("has a {MARKER} file that jobq did not write; it is not a jobq store")
        })
}

pub(super) fn write_marker(dir: &Path, version: u32) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let tmp = dir.join(format!("{MARKER}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, format!("jobq-store {version}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(MARKER))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| StoreError::Io {
        action: format!("write {}", dir.join(MARKER).display()),
        source: sled::Error::Io(e),
    })
}

fn meta_key(name: &str) -> Vec<u8> {
    keys::named(keys::META, name)
}

impl Store {
    /// Checks the format version inside sled against the marker file beside
    /// it. sled recovers from a damaged log by dropping what follows the
    /// damage, which can make a store look empty; the marker tells such a
    /// store from a new one.
    pub(super) fn check_format(&self, dir: &Path, fresh: bool, marked: Option<u32>) -> Result<()> {
        let h = self.h()?;
        let key = meta_key("format");
        let stored = h.main.get(&key).map_err(io("read the format version"))?;
        let found = match stored {
            Some(v) => Some(
                <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Foreign {
                        path: dir.to_owned(),
                        problem: "has an unreadable format version; it is not a jobq store".into(),
                    })?,
            ),
            None => None,
        };
        match (found, marked) {
            (Some(found), _) if found > FORMAT_VERSION => Err(StoreError::Foreign {
                path: dir.to_owned(),
                problem: format!(
                    "holds store format {found}, newer than this jobq reads ({FORMAT_VERSION}); run a newer jobq"
                ),
            }),
            (Some(found), _) => {
                if marked.is_none() {
                    write_marker(dir, found)?;
                }
                self.migrate(found)
            }
            (None, Some(_)) => Err(StoreError::Foreign {
                path: dir.to_owned(),
                problem: "is damaged: it was a jobq store, but sled recovered no jobq data from it; restore it from a backup, or move it aside to start afresh".into(),
            }),
            (None, None) if fresh => {
                h.main
                    .insert(key, &FORMAT_VERSION.to_be_bytes())
                    .map_err(io("write the format version"))?;
                h.db.flush().map_err(io("flush the new store"))?;
                write_marker(dir, FORMAT_VERSION)
            }
            (None, None) => Err(StoreError::Foreign {
                path: dir.to_owned(),
                problem: "holds a sled database without a jobq format version; it is not a jobq store (or it is damaged); point --data-dir elsewhere".into(),
            }),
        }
    }

    /// Upgrades a store written in format `from` to [`FORMAT_VERSION`],
    /// one step at a time, each made durable before the version says so.
    fn migrate(&self, from: u32) -> Result<()> {
        debug_assert!(from <= FORMAT_VERSION);
        if from == FORMAT_VERSION {
            return Ok(());
        }
        // 1 → 2: nothing to rewrite (see FORMAT_VERSION).
        // 2 → 3: output chunks get their attempt.
        let moved = if from < 3 {
            self.migrate_output_keys()?
        } else {
            0
        };
        // 3 → 4: the number index.
        let numbered = if from < 4 {
            self.build_number_index()?
        } else {
            0
        };
        // 4 → 5: uploads become files.
        let uploads = if from < 5 {
            self.move_uploads_to_files()?
        } else {
            0
        };
        // 5 → 6: nothing to rewrite (see FORMAT_VERSION).
        // 6 → 7: output moves to files.
        let output_files = if from < 7 {
            self.move_output_to_files()?
        } else {
            0
        };
        let h = self.h()?;
        h.main
            .insert(meta_key("format"), &FORMAT_VERSION.to_be_bytes())
            .map_err(io("write the format version"))?;
        h.db.flush()
            .map_err(io("flush the store's new format version"))?;
        write_marker(&self.dir, FORMAT_VERSION)?;
        tracing::info!(
            from,
            to = FORMAT_VERSION,
            output_chunks_moved = moved,
            jobs_numbered = numbered,
            uploads_moved = uploads,
            output_chunks_to_files = output_files,
            "store format upgraded"
        );
        Ok(())
    }

    /// Format 3 → 4: a number-index entry for every job record.
    fn build_number_index(&self) -> Result<u64> {
        let h = self.h()?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in h.main.scan_prefix([keys::JOB]) {
            let (key, value) = item.map_err(io("read the job records"))?;
            let Some(id) = keys::id_of(&key) else {
                continue;
            };
            let job = decode(&id, &value)?;
            batch.insert(&keys::number(job.number()), id.as_bytes());
            n += 1;
        }
        h.main
            .apply_batch(batch)
            .map_err(io("write the number index"))?;
        Ok(n)
    }
}
