//! A schedule's timetable: a cron expression read by croner, in an IANA
//! time zone read by jiff, and the one question the engine asks of it:
//! when is the next fire after this moment?
//!
//! DST, as croner resolves it (docs/api.md, "Schedules"): a fire whose
//! local time falls in a spring-forward gap runs at the end of the gap; in a
//! fall-back repeat, a fixed-time fire (`30 2 * * *`) runs once, at the
//! first of the two, and an interval fire (`*/15 * * * *`) runs in both.

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::api::FieldError;

/// The names of the fields of a 5-field expression, in order; a 6-field one
/// has `second` in front.
const FIELDS: [&str; 5] = [
    "minute, 0-59",
    "hour, 0-23",
    "day-of-month, 1-31",
    "month, 1-12 or JAN-DEC",
    "day-of-week, 0-7 or SUN-SAT",
];

/// A parsed cron expression in its time zone.
#[derive(Clone, Debug)]
pub struct TimeTable {
    cron: Cron,
    zone: TimeZone,
}

impl TimeTable {
    /// Reads `cron` in time zone `timezone`; an error names the field at
    /// fault (`cron` or `timezone`) and, for a cron field, which one and
    /// why.
    pub fn parse(cron: &str, timezone: &str) -> Result<TimeTable, FieldError> {
        let zone = zone(timezone)?;
        let cron = parse_cron(cron)?;
        Ok(TimeTable { cron, zone })
    }

    /// The first fire strictly after `after`, or `None` when there is none
    /// before the year 5000 (`0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }
}

impl TimeTable {
    /// The last fire at or before `until`, if any (since the year 1).
    pub fn latest_until(&self, until: Timestamp) -> Option<Timestamp> {
        let end = until.to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&end, true)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }
}

/// The time zone `name` names: an IANA name (`Europe/Berlin`) or `UTC`.
fn zone(name: &str) -> Result<TimeZone, FieldError> {
    if name.is_empty() || name.len() > 64 || name.contains(['\0', '\n']) {
        return Err(FieldError::new(
            "timezone",
            "must be an IANA time zone name such as \"UTC\" or \"Europe/Berlin\"",
        ));
    }
    TimeZone::get(name).map_err(|_| {
        FieldError::new(
            "timezone",
            format!(
                "{name:?} is not a known IANA time zone (such as \"UTC\" or \"Europe/Berlin\")"
            ),
        )
    })
}

/// The parser of the contract's expressions: 5 fields, or 6 with seconds
/// first, or an `@hourly`-style alias; no year field.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Reads `expr`, and when croner refuses it, finds which field is at fault
/// by reading each alone with the others `*`.
fn parse_cron(expr: &str) -> Result<Cron, FieldError> {
    let bad = |message: String| FieldError::new("cron", message);
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(bad("must not be empty: give 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly".into()));
    }
    if trimmed.len() > 256 || trimmed.contains('\0') {
        return Err(bad(
            "is not a cron expression (too long, or a NUL byte)".into()
        ));
    }
    if let Some(alias) = trimmed.strip_prefix('@') {
        if !["hourly", "daily", "weekly", "monthly", "yearly", "annually"]
            .contains(&alias.to_ascii_lowercase().as_str())
        {
            return Err(bad(format!(
                "{trimmed:?} is not an alias: use @hourly, @daily, @weekly, @monthly or @yearly"
            )));
        }
        return parser()
            .parse(trimmed)
            .map_err(|e| bad(format!("{trimmed:?}: {e}")));
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let names: Vec<&str> = match fields.len() {
        5 => FIELDS.to_vec(),
        6 => std::iter::once("second, 0-59").chain(FIELDS).collect(),
        n => {
            return Err(bad(format!(
                "has {n} field{}; give 5 (minute hour day-of-month month day-of-week) or 6 (second first)",
                if n == 1 { "" } else { "s" }
            )))
        }
    };
    let whole = match parser().parse(trimmed) {
        Ok(cron) => return never_fires(cron, trimmed).map_err(bad),
        Err(e) => e,
    };
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *field } else { "*" })
            .collect();
        if let Err(e) = parser().parse(&alone.join(" ")) {
            return Err(bad(format!(
                "field {} ({}) {field:?} is wrong: {}",
                i + 1,
                names[i],
                reason(&e).trim_end_matches('.').to_lowercase()
            )));
        }
    }
    Err(bad(format!("{trimmed:?}: {}", reason(&whole))))
}

/// croner's sentence without its prefix.
fn reason(e: &croner::errors::CronError) -> String {
    let text = e.to_string();
    for prefix in ["Component error: ", "Invalid pattern: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    text
}

/// Refuses an expression that matches no date (`0 0 30 2 *`).
fn never_fires(cron: Cron, text: &str) -> Result<Cron, String> {
    let start = Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
    let now = Timestamp::now().to_zoned(TimeZone::UTC);
    for from in [now, start] {
        if cron.find_next_occurrence(&from, false).is_ok() {
            return Ok(cron);
        }
    }
    Err(format!("{text:?} matches no date, so it would never fire"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn fires(table: &TimeTable, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = table.next_after(t).unwrap();
            out.push(t.to_string());
        }
        out
    }

    #[test]
    fn five_six_fields_and_aliases() {
        let t = TimeTable::parse("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            fires(&t, "2026-01-01T00:07:00Z", 2),
            ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"]
        );
        let t = TimeTable::parse("*/1 * * * * *", "UTC").unwrap();
        assert_eq!(
            fires(&t, "2026-01-01T00:00:00.5Z", 2),
            ["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]
        );
        let t = TimeTable::parse("@daily", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(&t, "2026-01-01T12:00:00Z", 1),
            ["2026-01-01T23:00:00Z"]
        );
        let t = TimeTable::parse("*/1 * * * * *", "UTC").unwrap();
        assert_eq!(
            t.latest_until(at("2026-01-01T00:00:07.5Z"))
                .unwrap()
                .to_string(),
            "2026-01-01T00:00:07Z"
        );
        assert_eq!(
            t.latest_until(at("2026-01-01T00:00:07Z"))
                .unwrap()
                .to_string(),
            "2026-01-01T00:00:07Z"
        );
        for alias in ["@hourly", "@weekly", "@monthly", "@yearly"] {
            TimeTable::parse(alias, "UTC").unwrap();
        }
    }

    #[test]
    fn both_day_fields_match_either_and_names_and_seven_are_taken() {
        // 2026-02-13 is a Friday; the 13th or any Friday fires.
        let t = TimeTable::parse("0 0 13 * FRI", "UTC").unwrap();
        assert_eq!(
            fires(&t, "2026-02-01T00:00:00Z", 3),
            [
                "2026-02-06T00:00:00Z",
                "2026-02-13T00:00:00Z",
                "2026-02-20T00:00:00Z"
            ]
        );
        let sunday = TimeTable::parse("0 0 * JAN 7", "UTC").unwrap();
        assert_eq!(
            fires(&sunday, "2026-01-01T00:00:00Z", 1),
            ["2026-01-04T00:00:00Z"]
        );
        let last = TimeTable::parse("0 0 L * *", "UTC").unwrap();
        assert_eq!(
            fires(&last, "2026-02-01T00:00:00Z", 1),
            ["2026-02-28T00:00:00Z"]
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        let e = TimeTable::parse("0 25 * * *", "UTC").unwrap_err();
        assert_eq!(e.field, "cron");
        assert!(
            e.message.contains("field 2 (hour, 0-23) \"25\""),
            "{}",
            e.message
        );
        let e = TimeTable::parse("61 0 * * * *", "UTC").unwrap_err();
        assert!(
            e.message.contains("field 1 (second, 0-59)"),
            "{}",
            e.message
        );
        let e = TimeTable::parse("* * * * * * *", "UTC").unwrap_err();
        assert!(e.message.contains("has 7 fields"), "{}", e.message);
        let e = TimeTable::parse("@fortnightly", "UTC").unwrap_err();
        assert!(e.message.contains("not an alias"), "{}", e.message);
        let e = TimeTable::parse("0 0 30 2 *", "UTC").unwrap_err();
        assert!(e.message.contains("never fire"), "{}", e.message);
        let e = TimeTable::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field, "timezone");
    }

    /// Europe/Berlin springs forward on 2026-03-29 at 02:00 (to 03:00) and
    /// falls back on 2026-10-25 at 03:00 (to 02:00).
    #[test]
    fn dst_spring_forward_gap_runs_at_its_end() {
        let fixed = TimeTable::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // 02:30 does not exist on the 29th: the fire is at 03:00 CEST.
        assert_eq!(
            fires(&fixed, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // An interval pattern has no fire in the hour that does not exist.
        let every = TimeTable::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(&every, "2026-03-29T00:15:00Z", 3),
            [
                "2026-03-29T00:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:30:00Z"
            ]
        );
    }

    #[test]
    fn dst_fall_back_repeat_runs_fixed_once_and_intervals_twice() {
        let fixed = TimeTable::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // 02:30 happens twice on the 25th (CEST, then CET): one fire, the first.
        assert_eq!(
            fires(&fixed, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // Every 30 minutes runs through both 02:00-03:00 hours.
        let every = TimeTable::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(&every, "2026-10-24T23:45:00Z", 4),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:30:00Z"
            ]
        );
    }
}
