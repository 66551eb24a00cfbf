//! A complaints procedure as data: its stages and the windows they run on.
//!
//! Windows come in units that must never be mixed up (DESIGN.md): clock hours
//! ("acknowledge within 48 hours"), working days ("respond within 30 working
//! days"), calendar days, weeks ("by the end of eight weeks") and calendar
//! months ("appeal within one calendar month"). A [`Span`] keeps the unit, and
//! [`Span::due_from`] applies it with the working-day calendar.
//!
//! Pure: no I/O, no clock.

use super::calendar::{add_days, add_months, CalendarError, WorkingCalendar};
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;
use std::str::FromStr;

/// A window in one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Span {
    Hours(u32),
    /// Hours of working time only (see [`WorkingCalendar::add_working_hours`]).
    WorkingHours(u32),
    WorkingDays(u32),
    CalendarDays(u32),
    Weeks(u32),
    Months(u32),
}

/// When a window ends: an instant for clock-hour windows, a whole date for
/// the others (due by the end of that date, local time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    At(DateTime<Utc>),
    By(NaiveDate),
}

impl Due {
    /// The instant the window closes (the end of the date for [`Due::By`]).
    pub fn instant(&self, cal: &WorkingCalendar) -> Result<DateTime<Utc>, CalendarError> {
        match *self {
            Due::At(t) => Ok(t),
            Due::By(d) => cal.end_of_day(d),
        }
    }

    /// The local date the window closes on.
    pub fn date(&self, cal: &WorkingCalendar) -> NaiveDate {
        match *self {
            Due::At(t) => cal.local_date(t),
            Due::By(d) => d,
        }
    }
}

impl Span {
    /// When a window of this span that opens at `start` closes.
    ///
    /// Hours run from the instant itself. Working days run from the counting
    /// date (the next working day for a mail that came late or on a day off),
    /// per the counting rule in [`super::calendar`]. Calendar days, weeks and
    /// months run from the local date of `start`.
    pub fn due_from(
        &self,
        start: DateTime<Utc>,
        cal: &WorkingCalendar,
    ) -> Result<Due, CalendarError> {
        let local = cal.local_date(start);
        Ok(match *self {
            Span::Hours(h) => Due::At(cal.add_hours(start, h)?),
            Span::WorkingHours(h) => Due::At(cal.add_working_hours(start, h)?),
            Span::WorkingDays(n) => Due::By(cal.add_working_days(cal.counting_date(start)?, n)?),
            Span::CalendarDays(n) => Due::By(add_days(local, n)?),
            Span::Weeks(n) => Due::By(add_days(local, n.saturating_mul(7))?),
            Span::Months(n) => Due::By(add_months(local, n)?),
        })
    }

    /// The same span moved on from a date rather than an instant (extension
    /// and resume arithmetic): clock hours count as whole days.
    pub fn due_after_date(
        &self,
        date: NaiveDate,
        cal: &WorkingCalendar,
    ) -> Result<NaiveDate, CalendarError> {
        match *self {
            Span::Hours(h) => add_days(date, h.div_ceil(24)),
            Span::WorkingHours(h) => {
                let spec = cal.spec();
                let day = (spec.cutoff - spec.day_start).num_hours().max(1);
                let days = (i64::from(h) + day - 1) / day;
                cal.add_working_days(date, u32::try_from(days).unwrap_or(u32::MAX))
            }
            Span::WorkingDays(n) => cal.add_working_days(date, n),
            Span::CalendarDays(n) => add_days(date, n),
            Span::Weeks(n) => add_days(date, n.saturating_mul(7)),
            Span::Months(n) => add_months(date, n),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            Span::Hours(n) => (n, "hour"),
            Span::WorkingHours(n) => (n, "working hour"),
            Span::WorkingDays(n) => (n, "working day"),
            Span::CalendarDays(n) => (n, "calendar day"),
            Span::Weeks(n) => (n, "week"),
            Span::Months(n) => (n, "calendar month"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a window: write a number and a unit, e.g. \"48 hours\", \"24 working hours\", \"30 working days\", \"10 days\", \"8 weeks\" or \"1 month\"")]
pub struct BadSpan(pub String);

impl FromStr for Span {
    type Err = BadSpan;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSpan(s.to_string());
        let text = s.trim().to_ascii_lowercase();
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u32 = text[..split].parse().map_err(|_| bad())?;
        let unit: Vec<&str> = text[split..].split_whitespace().collect();
        let unit = unit.join(" ");
        let unit = unit.strip_suffix('s').unwrap_or(&unit);
        Ok(match unit {
            "h" | "hour" | "clock hour" => Span::Hours(n),
            "wh" | "working hour" | "business hour" => Span::WorkingHours(n),
            "wd" | "working day" | "business day" => Span::WorkingDays(n),
            "d" | "day" | "calendar day" => Span::CalendarDays(n),
            "w" | "week" | "calendar week" => Span::Weeks(n),
            "month" | "calendar month" => Span::Months(n),
            _ => return Err(bad()),
        })
    }
}

/// What a stage is called. The seeds use informal, formal and appeal; other
/// procedures name theirs (stage-1, stage-2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageName(pub String);

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who answers a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answerer {
    /// The department head of the case's department (the usual case).
    #[default]
    DepartmentHead,
    QualityCoordinator,
    ManagingDirector,
}

/// One stage of a procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: StageName,
    /// Complainants should raise the matter within this window of the issue
    /// arising; a late one is flagged to QC, never refused.
    pub raise_within: Option<Span>,
    /// Acknowledge within this window of receipt.
    pub acknowledge_within: Span,
    /// The target date: a written response within this window.
    pub respond_within: Span,
    /// How far an extension may push the target date, if extensions are
    /// allowed at this stage.
    pub max_extension: Option<Span>,
    /// How long the complainant has to take it to the next stage after the
    /// written response.
    pub escalate_within: Option<Span>,
    pub answered_by: Answerer,
}

impl Stage {
    /// When a complaint raised at this stage on `received` about an issue
    /// that arose on `issue` came late: the last day it was due (the
    /// stage's `raise_within` after the issue), or `None` when it was in
    /// time or the stage sets no such window. Late is flagged, never
    /// refused.
    pub fn raised_late(
        &self,
        issue: NaiveDate,
        received: NaiveDate,
        cal: &WorkingCalendar,
    ) -> Result<Option<NaiveDate>, CalendarError> {
        let Some(window) = self.raise_within else {
            return Ok(None);
        };
        let due = window.due_after_date(issue, cal)?;
        Ok((received > due).then_some(due))
    }
}

/// A whole procedure: stages in order, and the timers around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    pub stages: Vec<Stage>,
    /// Each rung of the internal escalation ladder has this long to respond.
    pub escalation_window: Span,
    /// Escalation emails go only in working time (they wait for the next
    /// working morning otherwise).
    pub escalate_in_working_time: bool,
    /// A feedback request goes to the complainant this long after resolution.
    pub feedback_after: Option<Span>,
}

impl Procedure {
    pub fn stage(&self, name: &StageName) -> Option<&Stage> {
        self.stages.iter().find(|s| &s.name == name)
    }

    pub fn first_stage(&self) -> Option<&Stage> {
        self.stages.first()
    }

    /// The stage after `name`, if there is one.
    pub fn next_stage(&self, name: &StageName) -> Option<&Stage> {
        let i = self.stages.iter().position(|s| &s.name == name)?;
        self.stages.get(i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    #[test]
    fn spans_parse_in_every_unit() {
        let table = [
            ("48 hours", Span::Hours(48)),
            ("24h", Span::Hours(24)),
            ("1 hour", Span::Hours(1)),
            ("30 working days", Span::WorkingDays(30)),
            ("15 Working Days", Span::WorkingDays(15)),
            ("10 wd", Span::WorkingDays(10)),
            ("10 days", Span::CalendarDays(10)),
            ("8 weeks", Span::Weeks(8)),
            ("1 month", Span::Months(1)),
            ("1 calendar month", Span::Months(1)),
            ("6 months", Span::Months(6)),
        ];
        for (text, span) in table {
            assert_eq!(text.parse::<Span>(), Ok(span), "{text}");
        }
        for bad in ["", "hours", "48", "-1 hours", "3 fortnights", "1.5 days"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }

    #[test]
    fn spans_display_round_trip() {
        for span in [
            Span::Hours(48),
            Span::WorkingDays(1),
            Span::CalendarDays(10),
            Span::Weeks(8),
            Span::Months(1),
        ] {
            assert_eq!(span.to_string().parse::<Span>(), Ok(span));
        }
    }

    #[test]
    fn due_keeps_units_apart() {
        let cal = WorkingCalendar::default();
        // Friday 18 December 2026, 10:00 GMT.
        let at = utc("2026-12-18T10:00:00Z");
        let date = |s: &str| s.parse::<NaiveDate>().expect("date");
        assert_eq!(
            Span::Hours(48).due_from(at, &cal),
            Ok(Due::At(utc("2026-12-20T10:00:00Z")))
        );
        assert_eq!(
            Span::WorkingDays(10).due_from(at, &cal),
            Ok(Due::By(date("2027-01-06")))
        );
        assert_eq!(
            Span::CalendarDays(10).due_from(at, &cal),
            Ok(Due::By(date("2026-12-28")))
        );
        assert_eq!(
            Span::Weeks(8).due_from(at, &cal),
            Ok(Due::By(date("2027-02-12")))
        );
        assert_eq!(
            Span::Months(1).due_from(at, &cal),
            Ok(Due::By(date("2027-01-18")))
        );
        // Late on Friday: working days count from Monday 21st.
        let late = utc("2026-12-18T17:30:00Z");
        assert_eq!(
            Span::WorkingDays(1).due_from(late, &cal),
            Ok(Due::By(date("2026-12-22")))
        );
    }

    #[test]
    fn a_complaint_raised_after_its_window_is_late_by_working_days() {
        let cal = WorkingCalendar::default();
        let date = |s: &str| s.parse::<NaiveDate>().expect("date");
        let stage = |raise_within| Stage {
            name: StageName("informal".into()),
            raise_within,
            acknowledge_within: Span::Hours(48),
            respond_within: Span::WorkingDays(20),
            max_extension: None,
            escalate_within: None,
            answered_by: Answerer::DepartmentHead,
        };
        // Seed 000 §4: within 5 working days of the issue. Issue on
        // Monday 21 December 2026; Christmas Day and Boxing Day (moved to
        // Monday 28th) are not working days: due by Wednesday 30th.
        let informal = stage(Some(Span::WorkingDays(5)));
        let issue = date("2026-12-21");
        assert_eq!(
            informal.raised_late(issue, date("2026-12-30"), &cal),
            Ok(None)
        );
        assert_eq!(
            informal.raised_late(issue, date("2026-12-31"), &cal),
            Ok(Some(date("2026-12-30")))
        );
        // Raised the day the issue arose, or before it was due: in time.
        assert_eq!(informal.raised_late(issue, issue, &cal), Ok(None));
        // No window: never late.
        assert_eq!(
            stage(None).raised_late(issue, date("2027-06-01"), &cal),
            Ok(None)
        );
    }
}
