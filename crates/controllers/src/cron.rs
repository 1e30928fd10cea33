//! Cron schedules as Kubernetes reads them (robfig/cron's `ParseStandard`): five
//! fields (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges,
//! steps and month/day names, or a descriptor (`@hourly`, `@daily`, ...). Times are UTC
//! at minute precision; the search is pure.

use crate::util::Time;
use time::{Date, Duration, Month, PrimitiveDateTime, UtcOffset};

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not five fields (and no known descriptor).
    #[error("expected exactly 5 fields, found {0}: {1:?}")]
    FieldCount(usize, String),
    /// A descriptor Drover does not know (`@every` is not supported).
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    /// A value, range or step that does not parse or is out of bounds.
    #[error("invalid {field} value {value:?}: {reason}")]
    Field {
        /// Which field (minute, hour, ...).
        field: &'static str,
        /// The offending text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// The day-of-month field was `*` or `?` (no step): then days must match both fields,
    /// else either (Vixie cron's rule, kept by robfig/cron).
    dom_star: bool,
    dow_star: bool,
}

struct Bounds {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    name: "day of week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

fn field_error(b: &Bounds, value: &str, reason: impl Into<String>) -> CronError {
    CronError::Field {
        field: b.name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn number(b: &Bounds, s: &str, whole: &str) -> Result<u32, CronError> {
    if let Some(i) = b.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(b.min + i as u32);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| field_error(b, whole, format!("{s:?} is not a number")))?;
    if v < b.min || v > b.max {
        return Err(field_error(
            b,
            whole,
            format!("{v} is outside {}-{}", b.min, b.max),
        ));
    }
    Ok(v)
}

/// One field: comma-separated `*`, `?`, `a`, `a-b`, each optionally `/step`. Returns the
/// bits and whether it was a plain star.
fn parse_field(text: &str, b: &Bounds) -> Result<(u64, bool), CronError> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| field_error(b, part, "bad step"))?;
                if step == 0 {
                    return Err(field_error(b, part, "step must be positive"));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (b.min, b.max, true)
        } else if let Some((lo, hi)) = range.split_once('-') {
            (number(b, lo, part)?, number(b, hi, part)?, false)
        } else {
            let v = number(b, range, part)?;
            // `N/step` means N through the maximum.
            (v, if step.is_some() { b.max } else { v }, false)
        };
        if start > end {
            return Err(field_error(b, part, "range start after its end"));
        }
        let step = step.unwrap_or(1);
        // A star with a step larger than one restricts the field.
        star |= is_star && step == 1;
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a standard five-field spec or a descriptor.
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        let spec = spec.trim();
        let expanded = if let Some(d) = spec.strip_prefix('@') {
            match d.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(CronError::Descriptor(spec.to_string())),
            }
        } else {
            spec
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount(fields.len(), spec.to_string()));
        }
        let (minutes, _) = parse_field(fields[0], &MINUTE)?;
        let (hours, _) = parse_field(fields[1], &HOUR)?;
        let (days_of_month, dom_star) = parse_field(fields[2], &DOM)?;
        let (months, _) = parse_field(fields[3], &MONTH)?;
        let (days_of_week, dow_star) = parse_field(fields[4], &DOW)?;
        Ok(Schedule {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days_of_month & (1 << d.day()) != 0;
        let dow = self.days_of_week & (1 << d.weekday().number_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn month_matches(&self, d: Date) -> bool {
        self.months & (1 << u8::from(d.month())) != 0
    }

    /// Whether the minute containing `t` (UTC) is a schedule time.
    pub fn matches(&self, t: Time) -> bool {
        let t = utc_minute(t);
        self.month_matches(t.date())
            && self.day_matches(t.date())
            && self.hours & (1 << t.hour()) != 0
            && self.minutes & (1 << t.minute()) != 0
    }

    /// The first schedule time strictly after `t`, within five years (None if none, e.g.
    /// `0 0 30 2 *`).
    pub fn next_after(&self, t: Time) -> Option<Time> {
        let mut c = utc_minute(t) + Duration::minutes(1);
        let limit = c + Duration::days(5 * 366);
        while c <= limit {
            let d = c.date();
            if !self.month_matches(d) {
                c = first_of_next_month(d)?;
            } else if !self.day_matches(d) {
                c = d.next_day()?.midnight().assume_utc();
            } else if self.hours & (1 << c.hour()) == 0 {
                c = c.replace_minute(0).ok()? + Duration::hours(1);
            } else if self.minutes & (1 << c.minute()) == 0 {
                c += Duration::minutes(1);
            } else {
                return Some(c);
            }
        }
        None
    }

    /// The latest schedule time at or before `t`, within five years.
    pub fn prev_at_or_before(&self, t: Time) -> Option<Time> {
        let mut c = utc_minute(t);
        let limit = c - Duration::days(5 * 366);
        while c >= limit {
            let d = c.date();
            if !self.month_matches(d) {
                c = Date::from_calendar_date(d.year(), d.month(), 1)
                    .ok()?
                    .midnight()
                    .assume_utc()
                    - Duration::minutes(1);
            } else if !self.day_matches(d) {
                c = d.midnight().assume_utc() - Duration::minutes(1);
            } else if self.hours & (1 << c.hour()) == 0 {
                c = c.replace_minute(0).ok()? - Duration::minutes(1);
            } else if self.minutes & (1 << c.minute()) == 0 {
                c -= Duration::minutes(1);
            } else {
                return Some(c);
            }
        }
        None
    }
}

/// `t` in UTC, truncated to the minute.
fn utc_minute(t: Time) -> Time {
    let t = t.to_offset(UtcOffset::UTC);
    let p = PrimitiveDateTime::new(t.date(), t.time());
    p.replace_second(0)
        .and_then(|p| p.replace_nanosecond(0))
        .unwrap_or(p)
        .assume_utc()
}

fn first_of_next_month(d: Date) -> Option<Time> {
    let (y, m) = match d.month() {
        Month::December => (d.year() + 1, Month::January),
        m => (d.year(), m.next()),
    };
    Some(
        Date::from_calendar_date(y, m, 1)
            .ok()?
            .midnight()
            .assume_utc(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Time {
        crate::util::parse_time(&json!(s)).unwrap()
    }

    fn next(spec: &str, from: &str) -> String {
        crate::util::format_time(Schedule::parse(spec).unwrap().next_after(t(from)).unwrap())
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30Z"),
            "2024-01-01T00:01:00Z"
        );
        // Strictly after: a schedule time itself is not returned.
        assert_eq!(
            next("* * * * *", "2024-01-01T00:01:00Z"),
            "2024-01-01T00:02:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:16:00Z"),
            "2024-01-01T00:30:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T23:50:00Z"),
            "2024-01-02T00:00:00Z"
        );
        // `N/step` runs from N to the maximum.
        assert_eq!(
            next("5/20 * * * *", "2024-01-01T00:26:00Z"),
            "2024-01-01T00:45:00Z"
        );
        assert_eq!(
            next("10-20/5 3 * * *", "2024-01-01T03:16:00Z"),
            "2024-01-01T03:20:00Z"
        );
        assert_eq!(
            next("10-20/5 3 * * *", "2024-01-01T03:20:00Z"),
            "2024-01-02T03:10:00Z"
        );
    }

    #[test]
    fn lists_ranges_and_names() {
        assert_eq!(
            next("0 9,17 * * *", "2024-01-01T09:00:00Z"),
            "2024-01-01T17:00:00Z"
        );
        // Weekdays 9:30; 2024-01-06 is a Saturday.
        assert_eq!(
            next("30 9 * * MON-FRI", "2024-01-05T10:00:00Z"),
            "2024-01-08T09:30:00Z"
        );
        assert_eq!(
            next("0 0 1 jun *", "2024-01-01T00:00:00Z"),
            "2024-06-01T00:00:00Z"
        );
        assert_eq!(
            next("0 12 * * sun", "2024-01-01T00:00:00Z"),
            "2024-01-07T12:00:00Z"
        );
        // Leap day.
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next_after(t("2024-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn day_of_month_and_week_are_ored_unless_one_is_a_star() {
        // Vixie cron: "on the 13th, and on every Friday".
        let s = "0 0 13 * 5";
        assert_eq!(next(s, "2024-09-01T00:00:00Z"), "2024-09-06T00:00:00Z");
        assert_eq!(next(s, "2024-09-12T00:00:00Z"), "2024-09-13T00:00:00Z");
        // With a star day of month only the weekday counts.
        assert_eq!(
            next("0 0 * * 5", "2024-09-12T00:00:00Z"),
            "2024-09-13T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 5", "2024-09-13T00:00:00Z"),
            "2024-09-20T00:00:00Z"
        );
        // `*/2` is not a star: then either field may match (robfig clears the star bit).
        let s = Schedule::parse("0 0 */2 * 1").unwrap();
        assert!(!s.dom_star);
        // 2024-09-02 is a Monday (even day does not matter: either field).
        assert!(s.matches(t("2024-09-02T00:00:00Z")));
        assert!(s.matches(t("2024-09-03T00:00:00Z")));
        assert!(!s.matches(t("2024-09-04T00:00:00Z")));
    }

    #[test]
    fn descriptors() {
        assert_eq!(
            next("@hourly", "2024-01-01T10:30:00Z"),
            "2024-01-01T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2024-01-01T10:30:00Z"),
            "2024-01-02T00:00:00Z"
        );
        assert_eq!(
            next("@midnight", "2024-01-01T10:30:00Z"),
            "2024-01-02T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2024-01-01T10:30:00Z"),
            "2024-01-07T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2024-01-15T00:00:00Z"),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-01-15T00:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@annually", "2024-01-15T00:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        assert!(matches!(
            Schedule::parse("@every 5m"),
            Err(CronError::Descriptor(_))
        ));
    }

    #[test]
    fn invalid_specs_are_rejected() {
        for bad in [
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
            "* * * foo *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} must not parse");
        }
    }

    #[test]
    fn previous_time_is_at_or_before() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let p = |x: &str| crate::util::format_time(s.prev_at_or_before(t(x)).unwrap());
        assert_eq!(p("2024-01-01T00:25:59Z"), "2024-01-01T00:20:00Z");
        assert_eq!(p("2024-01-01T00:20:00Z"), "2024-01-01T00:20:00Z");
        assert_eq!(p("2024-01-01T00:05:00Z"), "2024-01-01T00:00:00Z");
        let m = Schedule::parse("0 0 1 * *").unwrap();
        assert_eq!(
            crate::util::format_time(m.prev_at_or_before(t("2024-03-15T10:00:00Z")).unwrap()),
            "2024-03-01T00:00:00Z"
        );
        assert_eq!(
            crate::util::format_time(m.prev_at_or_before(t("2024-01-01T00:00:00Z")).unwrap()),
            "2024-01-01T00:00:00Z"
        );
    }
}
