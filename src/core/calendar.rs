//! The working-day calendar every deadline is counted in.
//!
//! Working days exclude weekends, the bank holidays of the configured UK nation
//! (see [`super::holidays`]), extra holidays from config and closure periods
//! (school holidays, a Christmas shutdown).
//!
//! Counting rule, used everywhere in redress:
//! - "N working days after D" is the Nth working day strictly after D; D itself
//!   never counts, whether or not it is a working day.
//! - "working days between D1 and D2" counts the working days d with
//!   D1 < d <= D2.
//!
//! Clock windows ("within 48 hours") are counted in wall-clock hours of the
//! configured time zone, so that a DST change never moves a deadline by an hour.
//!
//! Pure: no I/O, no clock reads; every function takes the instant it needs.

use super::holidays::{bank_holidays, Nation};
use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc, Weekday,
};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// A closure period: every date from `from` to `to`, both included, is not a
/// working day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Closure {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }
}

/// Everything a [`WorkingCalendar`] is made from.
#[derive(Debug, Clone)]
pub struct CalendarSpec {
    pub nation: Nation,
    pub time_zone: Tz,
    /// Mail received at or after this local time counts from the next working
    /// day; working time ends then, too.
    pub cutoff: NaiveTime,
    /// When working time starts on a working day (escalation emails wait for
    /// it; working-hour windows count from it).
    pub day_start: NaiveTime,
    pub closures: Vec<Closure>,
    /// Holidays on top of the built-in bank holidays (config, gov.uk import).
    pub extra_holidays: Vec<NaiveDate>,
}

impl Default for CalendarSpec {
    fn default() -> Self {
        CalendarSpec {
            nation: Nation::EnglandAndWales,
            time_zone: chrono_tz::Europe::London,
            cutoff: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN),
            day_start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            closures: Vec::new(),
            extra_holidays: Vec::new(),
        }
    }
}

/// Why a calendar operation has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("date out of range")]
    OutOfRange,
    #[error("no working day within {0} days of {1}: check the closures")]
    NoWorkingDay(u32, NaiveDate),
}

/// Longest run of non-working days searched before giving up: a year of
/// closures is a configuration mistake, not a calendar.
const MAX_NON_WORKING_RUN: u32 = 366;

/// The working-day calendar of one organisation.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    spec: CalendarSpec,
    holidays: BTreeSet<NaiveDate>,
}

impl Default for WorkingCalendar {
    fn default() -> Self {
        WorkingCalendar::new(CalendarSpec::default())
    }
}

impl WorkingCalendar {
    /// Builds the calendar; bank holidays of the nation are included for
    /// every year from 1970 to 2200 (built-in years are exact; others follow
    /// the regular rules).
    pub fn new(spec: CalendarSpec) -> Self {
        let mut holidays: BTreeSet<NaiveDate> = (1970..=2200)
            .flat_map(|y| bank_holidays(spec.nation, y))
            .map(|h| h.date)
            .collect();
        holidays.extend(spec.extra_holidays.iter().copied());
        WorkingCalendar { spec, holidays }
    }

    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    pub fn time_zone(&self) -> Tz {
        self.spec.time_zone
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
            && !self.holidays.contains(&date)
            && !self.spec.closures.iter().any(|c| c.contains(date))
    }

    /// Why `date` is not a working day, if it is not.
    pub fn why_not_working(&self, date: NaiveDate) -> Option<String> {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return Some("weekend".to_string());
        }
        if let Some(h) = bank_holidays(self.spec.nation, date.year())
            .into_iter()
            .find(|h| h.date == date)
        {
            return Some(h.title);
        }
        if self.holidays.contains(&date) {
            return Some("holiday (config)".to_string());
        }
        self.spec
            .closures
            .iter()
            .find(|c| c.contains(date))
            .map(|c| format!("closure: {}", c.name))
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        let mut d = date;
        for _ in 0..MAX_NON_WORKING_RUN {
            d = d.succ_opt().ok_or(CalendarError::OutOfRange)?;
            if self.is_working_day(d) {
                return Ok(d);
            }
        }
        Err(CalendarError::NoWorkingDay(MAX_NON_WORKING_RUN, date))
    }

    /// The Nth working day strictly after `date` (`date` itself never
    /// counts). Zero days gives `date` back unchanged.
    pub fn add_working_days(&self, date: NaiveDate, days: u32) -> Result<NaiveDate, CalendarError> {
        let mut d = date;
        for _ in 0..days {
            d = self.next_working_day(d)?;
        }
        Ok(d)
    }

    /// The number of working days d with `from < d <= to`; negative when
    /// `to` is before `from` (the days with `to < d <= from`, negated).
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        from.iter_days()
            .skip(1)
            .take_while(|d| *d <= to)
            .filter(|d| self.is_working_day(*d))
            .count() as i64
    }

    /// The local date in the calendar's time zone of an instant.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.spec.time_zone).date_naive()
    }

    /// The date a mail received at `received` counts from: its own local date
    /// when that is a working day and it came before the cut-off, else the
    /// next working day.
    pub fn counting_date(&self, received: DateTime<Utc>) -> Result<NaiveDate, CalendarError> {
        let local = received.with_timezone(&self.spec.time_zone);
        let date = local.date_naive();
        if self.is_working_day(date) && local.time() < self.spec.cutoff {
            Ok(date)
        } else {
            self.next_working_day(date)
        }
    }

    /// `hours` wall-clock hours after `at` in the calendar's time zone: 48
    /// hours from 14:00 on the Saturday before the clocks change is 14:00 on
    /// Monday, not 13:00 or 15:00. A local time that does not exist (the hour
    /// skipped in spring) moves forward past the gap; one that exists twice
    /// (autumn) takes the earlier.
    pub fn add_hours(&self, at: DateTime<Utc>, hours: u32) -> Result<DateTime<Utc>, CalendarError> {
        let local = at.with_timezone(&self.spec.time_zone).naive_local();
        let target = local
            .checked_add_signed(chrono::Duration::hours(i64::from(hours)))
            .ok_or(CalendarError::OutOfRange)?;
        self.resolve_local(target)
    }

    /// The instant of a local wall-clock time in the calendar's time zone.
    pub fn resolve_local(&self, local: NaiveDateTime) -> Result<DateTime<Utc>, CalendarError> {
        let tz = self.spec.time_zone;
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earliest, _) => Ok(earliest.with_timezone(&Utc)),
            LocalResult::None => {
                // In a gap: step forward minute by minute (gaps are at most a
                // few hours) to the first local time that exists.
                let mut probe = local;
                for _ in 0..(24 * 60) {
                    probe = probe
                        .checked_add_signed(chrono::Duration::minutes(1))
                        .ok_or(CalendarError::OutOfRange)?;
                    if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                        return Ok(t.with_timezone(&Utc));
                    }
                }
                Err(CalendarError::OutOfRange)
            }
        }
    }

    /// Whether `at` falls in working time: a working day, from the day's
    /// start (included) to its end (excluded), local time.
    pub fn is_working_time(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.spec.time_zone);
        self.is_working_day(local.date_naive())
            && local.time() >= self.spec.day_start
            && local.time() < self.spec.cutoff
    }

    /// `at` itself when it is working time, else the start of the next
    /// working time (the next working morning).
    pub fn next_working_time(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>, CalendarError> {
        if self.is_working_time(at) {
            return Ok(at);
        }
        let local = at.with_timezone(&self.spec.time_zone);
        let date = local.date_naive();
        let day = if self.is_working_day(date) && local.time() < self.spec.day_start {
            date
        } else {
            self.next_working_day(date)?
        };
        self.resolve_local(day.and_time(self.spec.day_start))
    }

    /// `hours` working hours after `at`: only working time counts (24
    /// working hours with a 09:00-17:00 day are three working days). A start
    /// outside working time counts from the next working morning.
    pub fn add_working_hours(
        &self,
        at: DateTime<Utc>,
        hours: u32,
    ) -> Result<DateTime<Utc>, CalendarError> {
        let mut left = chrono::Duration::hours(i64::from(hours));
        let mut cur = self.next_working_time(at)?;
        // Each pass uses up one working day (or ends): bounded by the days
        // the hours can span, plus the runs of days off between them.
        loop {
            let date = cur.with_timezone(&self.spec.time_zone).date_naive();
            let end = self.resolve_local(date.and_time(self.spec.cutoff))?;
            let available = end - cur;
            if left <= available {
                return Ok(cur + left);
            }
            left -= available;
            let next = self.next_working_day(date)?;
            cur = self.resolve_local(next.and_time(self.spec.day_start))?;
        }
    }

    /// The end of a date in the calendar's time zone: the instant the next day
    /// starts locally (a deadline "by 18 December" is due then).
    pub fn end_of_day(&self, date: NaiveDate) -> Result<DateTime<Utc>, CalendarError> {
        let next = date.succ_opt().ok_or(CalendarError::OutOfRange)?;
        self.resolve_local(next.and_time(NaiveTime::MIN))
    }
}

/// `months` calendar months after `date`, clamped at the end of the month:
/// 31 January + 1 month is 28 February (29 in a leap year).
pub fn add_months(date: NaiveDate, months: u32) -> Result<NaiveDate, CalendarError> {
    date.checked_add_months(Months::new(months))
        .ok_or(CalendarError::OutOfRange)
}

/// `days` calendar days after `date`.
pub fn add_days(date: NaiveDate, days: u32) -> Result<NaiveDate, CalendarError> {
    date.checked_add_days(Days::new(u64::from(days)))
        .ok_or(CalendarError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("test date")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("test instant")
    }

    fn cal() -> WorkingCalendar {
        WorkingCalendar::default()
    }

    fn with_closure(from: &str, to: &str) -> WorkingCalendar {
        WorkingCalendar::new(CalendarSpec {
            closures: vec![Closure {
                name: "school holidays".into(),
                from: d(from),
                to: d(to),
            }],
            ..CalendarSpec::default()
        })
    }

    #[test]
    fn add_working_days_table() {
        let table = [
            // (from, days, expected, why)
            ("2026-11-23", 1, "2026-11-24", "Monday + 1"),
            (
                "2026-11-27",
                1,
                "2026-11-30",
                "Friday + 1 skips the weekend",
            ),
            (
                "2026-11-28",
                1,
                "2026-11-30",
                "Saturday + 1 is Monday: the start never counts",
            ),
            ("2026-11-23", 5, "2026-11-30", "a full week"),
            (
                "2026-12-18",
                10,
                "2027-01-06",
                "over Christmas: 25, 28 Dec and 1 Jan are holidays",
            ),
            (
                "2026-12-24",
                1,
                "2026-12-29",
                "Christmas Friday, Boxing Day substitute on Monday",
            ),
            (
                "2026-04-02",
                1,
                "2026-04-07",
                "Good Friday and Easter Monday",
            ),
            ("2022-06-01", 1, "2022-06-06", "Jubilee: 2 and 3 June 2022"),
            (
                "2022-09-16",
                1,
                "2022-09-20",
                "State funeral, 19 September 2022",
            ),
            ("2023-05-05", 1, "2023-05-09", "Coronation, 8 May 2023"),
            ("2024-02-28", 1, "2024-02-29", "leap day is a working day"),
            ("2026-03-27", 1, "2026-03-30", "over the spring DST weekend"),
            ("2026-11-23", 0, "2026-11-23", "zero days"),
        ];
        for (from, days, expected, why) in table {
            assert_eq!(
                cal().add_working_days(d(from), days),
                Ok(d(expected)),
                "{why}"
            );
        }
    }

    #[test]
    fn nations_differ() {
        let scot = WorkingCalendar::new(CalendarSpec {
            nation: Nation::Scotland,
            ..CalendarSpec::default()
        });
        let ni = WorkingCalendar::new(CalendarSpec {
            nation: Nation::NorthernIreland,
            ..CalendarSpec::default()
        });
        // Easter Monday is not a Scottish bank holiday; 2 January is.
        assert!(scot.is_working_day(d("2026-04-06")));
        assert!(!cal().is_working_day(d("2026-04-06")));
        assert!(!scot.is_working_day(d("2026-01-02")));
        assert!(cal().is_working_day(d("2026-01-02")));
        assert!(!ni.is_working_day(d("2026-03-17")));
        assert!(!ni.is_working_day(d("2026-07-13")));
    }

    #[test]
    fn closures_and_extra_holidays_are_not_working_days() {
        let c = with_closure("2026-10-26", "2026-10-30");
        assert!(!c.is_working_day(d("2026-10-28")));
        assert_eq!(c.add_working_days(d("2026-10-23"), 1), Ok(d("2026-11-02")));
        assert_eq!(c.working_days_between(d("2026-10-23"), d("2026-11-06")), 5);
        assert_eq!(
            c.why_not_working(d("2026-10-27")).as_deref(),
            Some("closure: school holidays")
        );
        let extra = WorkingCalendar::new(CalendarSpec {
            extra_holidays: vec![d("2026-11-24")],
            ..CalendarSpec::default()
        });
        assert_eq!(
            extra.add_working_days(d("2026-11-23"), 1),
            Ok(d("2026-11-25"))
        );
    }

    #[test]
    fn a_year_long_closure_is_an_error_not_a_hang() {
        let c = with_closure("2026-01-01", "2027-12-31");
        assert!(matches!(
            c.add_working_days(d("2026-01-01"), 1),
            Err(CalendarError::NoWorkingDay(..))
        ));
    }

    #[test]
    fn working_days_between_table() {
        let table = [
            ("2026-11-23", "2026-11-23", 0),
            ("2026-11-23", "2026-11-24", 1),
            ("2026-11-27", "2026-11-30", 1),
            ("2026-11-28", "2026-11-29", 0),
            ("2026-12-18", "2027-01-06", 10),
            ("2026-11-30", "2026-11-23", -5),
        ];
        for (from, to, n) in table {
            assert_eq!(
                cal().working_days_between(d(from), d(to)),
                n,
                "{from}..{to}"
            );
        }
    }

    #[test]
    fn add_months_clamps_at_month_end() {
        assert_eq!(add_months(d("2027-01-31"), 1), Ok(d("2027-02-28")));
        assert_eq!(add_months(d("2028-01-31"), 1), Ok(d("2028-02-29")));
        assert_eq!(add_months(d("2026-03-31"), 1), Ok(d("2026-04-30")));
        assert_eq!(add_months(d("2026-12-15"), 1), Ok(d("2027-01-15")));
        assert_eq!(add_months(d("2024-02-29"), 12), Ok(d("2025-02-28")));
    }

    #[test]
    fn hours_are_wall_clock_hours_across_dst() {
        // Spring forward: 29 March 2026, 01:00 GMT -> 02:00 BST.
        let before = utc("2026-03-28T14:00:00Z"); // 14:00 GMT Saturday
        let due = cal().add_hours(before, 48).expect("in range");
        assert_eq!(due, utc("2026-03-30T13:00:00Z")); // 14:00 BST Monday
                                                      // Fall back: 25 October 2026, 02:00 BST -> 01:00 GMT.
        let before = utc("2026-10-24T13:00:00Z"); // 14:00 BST Saturday
        let due = cal().add_hours(before, 24).expect("in range");
        assert_eq!(due, utc("2026-10-25T14:00:00Z")); // 14:00 GMT Sunday
                                                      // Landing in the skipped hour moves past the gap.
        let at = utc("2026-03-28T01:30:00Z");
        assert_eq!(cal().add_hours(at, 24), Ok(utc("2026-03-29T01:00:00Z")));
    }

    #[test]
    fn counting_date_moves_late_and_non_working_arrivals() {
        // Monday 10:00 GMT: counts from Monday.
        assert_eq!(
            cal().counting_date(utc("2026-11-23T10:00:00Z")),
            Ok(d("2026-11-23"))
        );
        // Monday 17:00 exactly is late: counts from Tuesday.
        assert_eq!(
            cal().counting_date(utc("2026-11-23T17:00:00Z")),
            Ok(d("2026-11-24"))
        );
        // 16:30 BST in summer is 15:30 UTC and on time...
        assert_eq!(
            cal().counting_date(utc("2026-06-15T15:30:00Z")),
            Ok(d("2026-06-15"))
        );
        // ...while 16:30 UTC in summer is 17:30 BST: late.
        assert_eq!(
            cal().counting_date(utc("2026-06-15T16:30:00Z")),
            Ok(d("2026-06-16"))
        );
        // Saturday: counts from Monday.
        assert_eq!(
            cal().counting_date(utc("2026-11-28T09:00:00Z")),
            Ok(d("2026-11-30"))
        );
        // Christmas Eve evening: counts from the 29th.
        assert_eq!(
            cal().counting_date(utc("2026-12-24T18:00:00Z")),
            Ok(d("2026-12-29"))
        );
        // 23:30 UTC on Sunday 31 May 2026 is 00:30 BST Monday 1 June: a working day.
        assert_eq!(
            cal().counting_date(utc("2026-05-31T23:30:00Z")),
            Ok(d("2026-06-01"))
        );
    }

    #[test]
    fn end_of_day_is_local_midnight() {
        assert_eq!(
            cal().end_of_day(d("2026-06-15")),
            Ok(utc("2026-06-15T23:00:00Z"))
        );
        assert_eq!(
            cal().end_of_day(d("2026-12-15")),
            Ok(utc("2026-12-16T00:00:00Z"))
        );
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (0i64..(11 * 366)).prop_map(|n| d("2020-01-01") + chrono::Duration::days(n))
    }

    proptest! {
        #[test]
        fn added_days_land_on_working_days_and_count_back(date in any_date(), n in 1u32..80) {
            let c = with_closure("2025-07-21", "2025-09-02");
            let end = c.add_working_days(date, n).expect("in range");
            prop_assert!(c.is_working_day(end));
            prop_assert!(end > date);
            prop_assert_eq!(c.working_days_between(date, end), i64::from(n));
            // The day before the result still falls short.
            prop_assert_eq!(c.working_days_between(date, end.pred_opt().expect("date")), i64::from(n) - 1);
        }

        #[test]
        fn between_is_additive(a in any_date(), b in any_date(), m in any_date()) {
            let c = cal();
            prop_assert_eq!(
                c.working_days_between(a, b),
                c.working_days_between(a, m) + c.working_days_between(m, b)
            );
        }

        #[test]
        fn adding_is_monotonic(date in any_date(), n in 0u32..60) {
            let c = cal();
            let a = c.add_working_days(date, n).expect("in range");
            let b = c.add_working_days(date, n + 1).expect("in range");
            prop_assert!(b > a);
        }

        #[test]
        fn weekends_never_work(date in any_date()) {
            let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
            prop_assert!(!(weekend && cal().is_working_day(date)));
        }

        #[test]
        fn add_months_never_overflows_the_month(date in any_date(), n in 0u32..36) {
            let r = add_months(date, n).expect("in range");
            let months = (r.year() - date.year()) * 12 + r.month() as i32 - date.month() as i32;
            prop_assert_eq!(months, n as i32);
            prop_assert!(r.day() <= date.day());
        }

        #[test]
        fn hours_keep_the_wall_clock(minutes in 0i64..(11 * 366 * 24 * 60), h in 0u32..200) {
            let c = cal();
            let at = utc("2020-01-01T00:00:00Z") + chrono::Duration::minutes(minutes);
            let due = c.add_hours(at, h).expect("in range");
            let local_at = at.with_timezone(&c.time_zone()).naive_local();
            let local_due = due.with_timezone(&c.time_zone()).naive_local();
            let diff = (local_due - local_at).num_minutes();
            // Exactly h hours of wall clock, unless the target sat in the spring gap.
            prop_assert!(diff == i64::from(h) * 60 || (diff > i64::from(h) * 60 && diff <= i64::from(h) * 60 + 60));
        }
    }
}
