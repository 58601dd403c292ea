//! Schedules' records (`S` + name → JSON). They are written in the same
//! atomic batch as the jobs their fires make ([`Store::apply_with`]), so a
//! fire's job and the schedule's advance past that fire reach disk
//! together or not at all.

use super::*;
use crate::schedule::Schedule;

/// A change to a schedule's record, written with a batch of job changes.
#[derive(Clone, Copy, Debug)]
pub enum ScheduleWrite<'a> {
    /// Store this record (new or replacing).
    Put(&'a Schedule),
    /// Forget the schedule of this name.
    Remove(&'a str),
}

impl ScheduleWrite<'_> {
    /// Adds this write to `batch`.
    pub(super) fn add_to(&self, batch: &mut sled::Batch) -> Result<()> {
        match self {
            ScheduleWrite::Put(schedule) => {
                let value = serde_json::to_vec(schedule).map_err(|e| StoreError::Corrupt {
                    key: format!("schedule {}", schedule.name),
                    reason: format!("cannot encode: {e}"),
                })?;
                batch.insert(keys::named(keys::SCHEDULE, &schedule.name), value);
            }
            ScheduleWrite::Remove(name) => batch.remove(keys::named(keys::SCHEDULE, name)),
        }
        Ok(())
    }
}

fn decode_schedule(name: &str, bytes: &[u8]) -> Result<Schedule> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("schedule {name}"),
        reason: e.to_string(),
    })
}

impl Store {
    /// The schedule named `name`, if there is one.
    pub fn schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let h = self.h()?;
        let found = h
            .main
            .get(keys::named(keys::SCHEDULE, name))
            .map_err(io(format!("read schedule {name}")))?;
        found.map(|v| decode_schedule(name, &v)).transpose()
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Result<Vec<Schedule>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::SCHEDULE]) {
            let (key, value) = item.map_err(io("read the schedules"))?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            out.push(decode_schedule(&name, &value)?);
        }
        Ok(out)
    }

    /// Writes one schedule change alone, atomically.
    pub fn write_schedule(&self, write: ScheduleWrite<'_>) -> Result<()> {
        self.apply_with(&[], &[write])
    }
}
