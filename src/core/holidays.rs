//! UK bank holidays, built in for 2020-2030 and computed from the rules that
//! make them, so that no table has to be typed by hand.
//!
//! The rules are those of the Banking and Financial Dealings Act 1971 and the
//! royal proclamations that move or add days (listed in [`ONE_OFF`]). A fixed
//! date that falls on a weekend gets a substitute: the next weekday that is not
//! already a holiday, taken in the order the days occur in the year. That order
//! reproduces gov.uk's choices, e.g. Christmas on a Sunday gives Boxing Day on
//! Monday 26th and "Christmas Day (substitute day)" on Tuesday 27th.
//!
//! Pure: no I/O, no clock.

use chrono::{Datelike, NaiveDate, Weekday};
use std::fmt;
use std::str::FromStr;

/// First and last year whose bank holidays are built in (one-off days
/// proclaimed outside these years are not known to the built-in table; admins
/// add them in config or import gov.uk's `bank-holidays.json`).
pub const FIRST_BUILT_IN_YEAR: i32 = 2020;
pub const LAST_BUILT_IN_YEAR: i32 = 2030;

/// A UK nation with its own bank holidays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Nation {
    #[default]
    EnglandAndWales,
    Scotland,
    NorthernIreland,
}

impl Nation {
    pub const ALL: [Nation; 3] = [
        Nation::EnglandAndWales,
        Nation::Scotland,
        Nation::NorthernIreland,
    ];

    /// The name used in config and on the command line; also gov.uk's
    /// `division` key in `bank-holidays.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Nation::EnglandAndWales => "england-and-wales",
            Nation::Scotland => "scotland",
            Nation::NorthernIreland => "northern-ireland",
        }
    }
}

impl fmt::Display for Nation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown nation {0:?}: expected england-and-wales, scotland or northern-ireland")]
pub struct UnknownNation(pub String);

impl FromStr for Nation {
    type Err = UnknownNation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Nation::ALL
            .into_iter()
            .find(|n| n.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownNation(s.to_string()))
    }
}

/// One bank holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub date: NaiveDate,
    pub title: String,
}

/// A day proclaimed for one year only, for every nation.
struct OneOff {
    year: i32,
    month: u32,
    day: u32,
    title: &'static str,
    /// The regular day (month, day) it replaces, if it moves one.
    replaces: Option<(u32, u32)>,
}

const ONE_OFF: &[OneOff] = &[
    // The early May bank holiday moved to VE Day's 75th anniversary.
    OneOff {
        year: 2020,
        month: 5,
        day: 8,
        title: "Early May bank holiday (VE day)",
        replaces: Some((5, 4)),
    },
    // The spring bank holiday moved for the Platinum Jubilee weekend.
    OneOff {
        year: 2022,
        month: 6,
        day: 2,
        title: "Spring bank holiday",
        replaces: Some((5, 30)),
    },
    OneOff {
        year: 2022,
        month: 6,
        day: 3,
        title: "Platinum Jubilee bank holiday",
        replaces: None,
    },
    OneOff {
        year: 2022,
        month: 9,
        day: 19,
        title: "Bank Holiday for the State Funeral of Queen Elizabeth II",
        replaces: None,
    },
    OneOff {
        year: 2023,
        month: 5,
        day: 8,
        title: "Bank holiday for the coronation of King Charles III",
        replaces: None,
    },
];

/// The bank holidays of `nation` in `year`, in date order.
///
/// Years outside [`FIRST_BUILT_IN_YEAR`]..=[`LAST_BUILT_IN_YEAR`] follow the
/// regular rules only.
pub fn bank_holidays(nation: Nation, year: i32) -> Vec<Holiday> {
    let Some(jan1) = NaiveDate::from_ymd_opt(year, 1, 1) else {
        return Vec::new();
    };
    let ymd = |m, d| jan1.with_month(m).and_then(|x| x.with_day(d));
    let easter = easter_sunday(year);

    // Fixed-date days (may need a substitute) and moveable days, in the order
    // they occur in the year: the order decides which substitute goes first.
    let mut fixed: Vec<(NaiveDate, &str)> = vec![(jan1, "New Year’s Day")];
    let mut moveable: Vec<(Option<NaiveDate>, &str)> = vec![
        (easter.map(|e| e - chrono::Duration::days(2)), "Good Friday"),
        (
            nth_weekday(year, 5, Weekday::Mon, 1),
            "Early May bank holiday",
        ),
        (last_weekday(year, 5, Weekday::Mon), "Spring bank holiday"),
    ];
    match nation {
        Nation::EnglandAndWales => {
            moveable.push((
                easter.map(|e| e + chrono::Duration::days(1)),
                "Easter Monday",
            ));
            moveable.push((last_weekday(year, 8, Weekday::Mon), "Summer bank holiday"));
        }
        Nation::Scotland => {
            fixed.extend(ymd(1, 2).map(|d| (d, "2nd January")));
            moveable.push((nth_weekday(year, 8, Weekday::Mon, 1), "Summer bank holiday"));
            fixed.extend(ymd(11, 30).map(|d| (d, "St Andrew’s Day")));
        }
        Nation::NorthernIreland => {
            fixed.extend(ymd(3, 17).map(|d| (d, "St Patrick’s Day")));
            moveable.push((
                easter.map(|e| e + chrono::Duration::days(1)),
                "Easter Monday",
            ));
            fixed.extend(ymd(7, 12).map(|d| (d, "Battle of the Boyne (Orangemen’s Day)")));
            moveable.push((last_weekday(year, 8, Weekday::Mon), "Summer bank holiday"));
        }
    }
    fixed.extend(ymd(12, 25).map(|d| (d, "Christmas Day")));
    fixed.extend(ymd(12, 26).map(|d| (d, "Boxing Day")));

    let mut days: Vec<Holiday> = Vec::new();
    for (date, title) in moveable {
        let Some(mut date) = date else { continue };
        let mut title = title.to_string();
        for o in ONE_OFF {
            if o.year == year && o.replaces.and_then(|(rm, rd)| ymd(rm, rd)) == Some(date) {
                if let Some(moved) = ymd(o.month, o.day) {
                    date = moved;
                    title = o.title.to_string();
                }
            }
        }
        days.push(Holiday { date, title });
    }
    for o in ONE_OFF {
        if o.year == year && o.replaces.is_none() {
            if let Some(date) = ymd(o.month, o.day) {
                days.push(Holiday {
                    date,
                    title: o.title.to_string(),
                });
            }
        }
    }
    // Fixed days on a weekday stand; then weekend ones take the next free
    // weekday, in year order.
    for &(date, title) in &fixed {
        if !is_weekend(date) {
            days.push(Holiday {
                date,
                title: title.to_string(),
            });
        }
    }
    for &(date, title) in &fixed {
        if is_weekend(date) {
            let mut sub = date;
            while is_weekend(sub) || days.iter().any(|h| h.date == sub) {
                sub = sub.succ_opt().unwrap_or(sub);
            }
            days.push(Holiday {
                date: sub,
                title: format!("{title} (substitute day)"),
            });
        }
    }
    days.sort_by_key(|h| h.date);
    days
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Easter Sunday in the Gregorian calendar (the anonymous "Meeus/Jones/Butcher"
/// computus).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    (1..=5)
        .rev()
        .find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, weekday, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(nation: Nation, year: i32) -> Vec<String> {
        bank_holidays(nation, year)
            .into_iter()
            .map(|h| h.date.to_string())
            .collect()
    }

    #[test]
    fn easter_dates_match_the_almanac() {
        let known = [
            (2020, "2020-04-12"),
            (2021, "2021-04-04"),
            (2022, "2022-04-17"),
            (2023, "2023-04-09"),
            (2024, "2024-03-31"),
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2028, "2028-04-16"),
            (2029, "2029-04-01"),
            (2030, "2030-04-21"),
        ];
        for (year, date) in known {
            assert_eq!(
                easter_sunday(year).map(|d| d.to_string()).as_deref(),
                Some(date)
            );
        }
    }

    /// gov.uk's published England and Wales lists.
    #[test]
    fn england_and_wales_matches_gov_uk() {
        let table: &[(i32, &[&str])] = &[
            (
                2020,
                &[
                    "01-01", "04-10", "04-13", "05-08", "05-25", "08-31", "12-25", "12-28",
                ],
            ),
            (
                2021,
                &[
                    "01-01", "04-02", "04-05", "05-03", "05-31", "08-30", "12-27", "12-28",
                ],
            ),
            (
                2022,
                &[
                    "01-03", "04-15", "04-18", "05-02", "06-02", "06-03", "08-29", "09-19",
                    "12-26", "12-27",
                ],
            ),
            (
                2023,
                &[
                    "01-02", "04-07", "04-10", "05-01", "05-08", "05-29", "08-28", "12-25", "12-26",
                ],
            ),
            (
                2024,
                &[
                    "01-01", "03-29", "04-01", "05-06", "05-27", "08-26", "12-25", "12-26",
                ],
            ),
            (
                2025,
                &[
                    "01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26",
                ],
            ),
            (
                2026,
                &[
                    "01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28",
                ],
            ),
            (
                2027,
                &[
                    "01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28",
                ],
            ),
        ];
        for (year, expected) in table {
            let expected: Vec<String> = expected.iter().map(|md| format!("{year}-{md}")).collect();
            assert_eq!(
                dates(Nation::EnglandAndWales, *year),
                expected,
                "year {year}"
            );
        }
    }

    #[test]
    fn scotland_matches_gov_uk() {
        assert_eq!(
            dates(Nation::Scotland, 2022),
            [
                "2022-01-03",
                "2022-01-04",
                "2022-04-15",
                "2022-05-02",
                "2022-06-02",
                "2022-06-03",
                "2022-08-01",
                "2022-09-19",
                "2022-11-30",
                "2022-12-26",
                "2022-12-27"
            ]
        );
        assert_eq!(
            dates(Nation::Scotland, 2025),
            [
                "2025-01-01",
                "2025-01-02",
                "2025-04-18",
                "2025-05-05",
                "2025-05-26",
                "2025-08-04",
                "2025-12-01",
                "2025-12-25",
                "2025-12-26"
            ]
        );
        // New Year's Day on a Sunday: 2 January stands, New Year moves to the 3rd.
        assert_eq!(
            &dates(Nation::Scotland, 2023)[..2],
            ["2023-01-02", "2023-01-03"]
        );
        // New Year's Day on a Friday: 2 January moves to Monday the 4th.
        assert_eq!(
            &dates(Nation::Scotland, 2021)[..2],
            ["2021-01-01", "2021-01-04"]
        );
    }

    #[test]
    fn northern_ireland_matches_gov_uk() {
        assert_eq!(
            dates(Nation::NorthernIreland, 2025),
            [
                "2025-01-01",
                "2025-03-17",
                "2025-04-18",
                "2025-04-21",
                "2025-05-05",
                "2025-05-26",
                "2025-07-14",
                "2025-08-25",
                "2025-12-25",
                "2025-12-26"
            ]
        );
        // St Patrick's Day on a Sunday.
        assert!(dates(Nation::NorthernIreland, 2024).contains(&"2024-03-18".to_string()));
        assert!(dates(Nation::NorthernIreland, 2026).contains(&"2026-07-13".to_string()));
    }

    #[test]
    fn substitute_days_are_named() {
        let h = bank_holidays(Nation::EnglandAndWales, 2022);
        let sub = h.iter().find(|h| h.date.to_string() == "2022-12-27");
        assert_eq!(
            sub.map(|h| h.title.as_str()),
            Some("Christmas Day (substitute day)")
        );
    }

    #[test]
    fn every_built_in_year_has_the_expected_count() {
        for year in FIRST_BUILT_IN_YEAR..=LAST_BUILT_IN_YEAR {
            let extra = match year {
                2022 => 2,
                2023 => 1,
                _ => 0,
            };
            assert_eq!(
                bank_holidays(Nation::EnglandAndWales, year).len(),
                8 + extra,
                "{year}"
            );
            assert_eq!(
                bank_holidays(Nation::Scotland, year).len(),
                9 + extra,
                "{year}"
            );
            assert_eq!(
                bank_holidays(Nation::NorthernIreland, year).len(),
                10 + extra,
                "{year}"
            );
        }
    }

    #[test]
    fn nations_parse_case_insensitively_and_reject_others() {
        assert_eq!("Scotland".parse::<Nation>(), Ok(Nation::Scotland));
        assert!("wales".parse::<Nation>().is_err());
    }
}
