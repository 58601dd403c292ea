//! A job's resource limits and what it used (docs/api.md, "Job resource
//! limits and usage"): the `limits` a spec, the `[jobs]` table and a
//! `[queues.NAME]` table give, how they combine, and the `usage` recorded
//! for each attempt.
//!
//! How each limit is enforced is the runner's (`runner/watch.rs`,
//! `runner/spawn.rs`); this module only says what the limits are.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::api::{DurationArg, FieldError};

/// The least memory limit: below it even a shell does not start.
pub const MIN_MEMORY: u64 = 1024 * 1024;
/// The most open files a limit may name (the kernel's `nr_open` default).
pub const MAX_OPEN_FILES: u64 = 1 << 20;

/// Limits as written: in a spec's `limits`, or `limits` in `[jobs]` or
/// `[queues.NAME]`. Each is optional; absent means "no limit from here".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsArg {
    /// Bytes, a number or a size such as `"512MiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<SizeArg>,
    /// CPU time of all the job's processes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<DurationArg>,
    /// Most processes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Most open files per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

/// The limits a job runs under, checked and combined: what is stored with
/// the job and enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of resident memory of the job's processes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPU time of the job's processes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<Duration>,
    /// Most processes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Most open files per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

/// Which limit a job passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// `memory`.
    Memory,
    /// `cpu_time`.
    CpuTime,
    /// `processes`.
    Processes,
}

impl LimitKind {
    /// The key's name.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::CpuTime => "cpu_time",
            LimitKind::Processes => "processes",
        }
    }
}

/// What one attempt used: its process tree's CPU time and peak memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// CPU seconds in user mode.
    pub cpu_user_s: f64,
    /// CPU seconds in the kernel.
    pub cpu_system_s: f64,
    /// Peak resident memory, bytes.
    pub max_rss_bytes: u64,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// True when a limit needs the job's process tree watched (the
    /// kernel's per-process limits cannot hold it alone).
    pub fn needs_watch(&self) -> bool {
        self.memory.is_some() || self.cpu_time.is_some() || self.processes.is_some()
    }

    /// The sentence of a job stopped for passing `kind`.
    pub fn passed(&self, kind: LimitKind) -> String {
        match kind {
            LimitKind::Memory => format!(
                "limit memory: the job's processes used more than {} together",
                bytesize::ByteSize::b(self.memory.unwrap_or_default())
                    .display()
                    .iec()
            ),
            LimitKind::CpuTime => format!(
                "limit cpu_time: the job's processes used more than {} of CPU time together",
                humantime::format_duration(self.cpu_time.unwrap_or_default())
            ),
            LimitKind::Processes => format!(
                "limit processes: the job reached its limit of {} processes at once",
                self.processes.unwrap_or_default()
            ),
        }
    }
}

impl LimitsArg {
    /// Checks each value; `field` prefixes the names in errors (`limits`
    /// in a spec, `jobs.limits` in the config).
    pub fn check(&self, field: &str) -> Result<Limits, FieldError> {
        let bad = |key: &str, message: String| FieldError::new(format!("{field}.{key}"), message);
        if let Some(SizeArg(m)) = self.memory {
            if m < MIN_MEMORY {
                return Err(bad(
                    "memory",
                    format!("must be at least 1MiB, not {m} bytes"),
                ));
            }
        }
        if let Some(DurationArg(t)) = self.cpu_time {
            if t < Duration::from_millis(100) {
                return Err(bad("cpu_time", "must be at least 100ms".to_owned()));
            }
        }
        if self.processes == Some(0) {
            return Err(bad("processes", "must be at least 1".to_owned()));
        }
        if let Some(n) = self.open_files {
            if !(3..=MAX_OPEN_FILES).contains(&n) {
                return Err(bad(
                    "open_files",
                    format!(
                        "must be between 3 (stdin, stdout, stderr) and {MAX_OPEN_FILES}, not {n}"
                    ),
                ));
            }
        }
        Ok(Limits {
            memory: self.memory.map(|s| s.0),
            cpu_time: self.cpu_time.map(|d| d.0),
            processes: self.processes,
            open_files: self.open_files,
        })
    }
}

impl Limits {
    /// `self` (a queue's) where set, else `fallback` (the daemon's), key
    /// by key.
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            memory: self.memory.or(fallback.memory),
            cpu_time: self.cpu_time.or(fallback.cpu_time),
            processes: self.processes.or(fallback.processes),
            open_files: self.open_files.or(fallback.open_files),
        }
    }

    /// A spec's `self` under `ceiling` (the queue's, or the daemon's):
    /// a key the spec leaves out takes the ceiling's; a key it sets may
    /// only lower it. `whose` names the ceiling in the error.
    pub fn under(self, ceiling: Limits, whose: &str) -> Result<Limits, FieldError> {
        fn pick<T: PartialOrd + Copy>(
            key: &str,
            spec: Option<T>,
            ceiling: Option<T>,
            whose: &str,
            show: impl Fn(T) -> String,
        ) -> Result<Option<T>, FieldError> {
            match (spec, ceiling) {
                (Some(s), Some(c)) if s > c => Err(FieldError::new(
                    format!("limits.{key}"),
                    format!(
                        "{} is above the limit of {} {whose} sets; a job may only lower it",
                        show(s),
                        show(c)
                    ),
                )),
                (Some(s), _) => Ok(Some(s)),
                (None, c) => Ok(c),
            }
        }
        let size = |b: u64| bytesize::ByteSize::b(b).display().iec().to_string();
        let time = |d: Duration| humantime::format_duration(d).to_string();
        let count = |n: u64| n.to_string();
        Ok(Limits {
            memory: pick("memory", self.memory, ceiling.memory, whose, size)?,
            cpu_time: pick("cpu_time", self.cpu_time, ceiling.cpu_time, whose, time)?,
            processes: pick("processes", self.processes, ceiling.processes, whose, count)?,
            open_files: pick(
                "open_files",
                self.open_files,
                ceiling.open_files,
                whose,
                count,
            )?,
        })
    }

    /// As a job shows them: sizes in bytes, durations in words.
    pub fn view(&self) -> LimitsArg {
        LimitsArg {
            memory: self.memory.map(SizeArg),
            cpu_time: self.cpu_time.map(DurationArg),
            processes: self.processes,
            open_files: self.open_files,
        }
    }
}

/// A size: a number of bytes, or a string such as `"512MiB"` or `"2GB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SizeArg(pub u64);

impl Serialize for SizeArg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for SizeArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SizeArg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size such as \"512MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SizeArg, E> {
                Ok(SizeArg(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SizeArg, E> {
                u64::try_from(v)
                    .map(SizeArg)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SizeArg, E> {
                parse_size(v).map(SizeArg).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Parses `"512MiB"`, `"2 GB"`, `"1024"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a size cannot be empty".to_owned());
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            format!(
                "{text:?} is not a size (use bytes, or a number with KiB, MiB, GiB, KB, MB, GB)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_may_only_lower_its_ceiling() {
        let ceiling = Limits {
            memory: Some(1 << 30),
            processes: Some(10),
            ..Limits::default()
        };
        let spec = Limits {
            memory: Some(1 << 20),
            ..Limits::default()
        };
        let got = spec.under(ceiling, "queue \"q\"").unwrap();
        assert_eq!(got.memory, Some(1 << 20));
        assert_eq!(got.processes, Some(10));
        let over = Limits {
            processes: Some(11),
            ..Limits::default()
        };
        let e = over.under(ceiling, "queue \"q\"").unwrap_err();
        assert_eq!(e.field, "limits.processes");
        assert!(
            e.message.contains("above the limit of 10 queue \"q\" sets"),
            "{e}"
        );
    }

    #[test]
    fn sizes_parse_and_bad_ones_say_why() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn values_out_of_range_are_refused_by_name() {
        let arg = LimitsArg {
            open_files: Some(2),
            ..LimitsArg::default()
        };
        assert_eq!(arg.check("limits").unwrap_err().field, "limits.open_files");
        let arg = LimitsArg {
            memory: Some(SizeArg(10)),
            ..LimitsArg::default()
        };
        assert_eq!(arg.check("limits").unwrap_err().field, "limits.memory");
    }
}
