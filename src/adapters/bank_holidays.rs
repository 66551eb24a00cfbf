//! Reads gov.uk's `bank-holidays.json` (https://www.gov.uk/bank-holidays.json
//! format: one object per division, each with an `events` list of
//! `{title, date, notes, bunting}`).

use crate::core::holidays::{Holiday, Nation};
use anyhow::Context as _;
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize)]
struct Division {
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    title: String,
    date: NaiveDate,
}

/// Parses the file's text into each nation's holidays, in date order.
pub fn parse(text: &str) -> anyhow::Result<HashMap<Nation, Vec<Holiday>>> {
    let divisions: HashMap<String, Division> =
        serde_json::from_str(text).context("not gov.uk's bank-holidays.json format")?;
    let mut out = HashMap::new();
    for (name, division) in divisions {
        let Ok(nation) = name.parse::<Nation>() else {
            anyhow::bail!("unknown division {name:?} (expected england-and-wales, scotland, northern-ireland)");
        };
        let mut days: Vec<Holiday> = division
            .events
            .into_iter()
            .map(|e| Holiday {
                date: e.date,
                title: e.title,
            })
            .collect();
        days.sort_by_key(|h| h.date);
        out.insert(nation, days);
    }
    anyhow::ensure!(!out.is_empty(), "the file lists no division");
    Ok(out)
}

/// Reads and parses the file.
pub fn read(path: &Path) -> anyhow::Result<HashMap<Nation, Vec<Holiday>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("Reading {}", path.display()))?;
    parse(&text).with_context(|| format!("Parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gov_uk_shape() {
        let text = r#"{
          "england-and-wales": {"division": "england-and-wales", "events": [
            {"title": "New Year’s Day", "date": "2031-01-01", "notes": "", "bunting": true},
            {"title": "Good Friday", "date": "2031-04-11", "notes": "", "bunting": false}
          ]},
          "scotland": {"division": "scotland", "events": [
            {"title": "2nd January", "date": "2031-01-02", "notes": "", "bunting": true}
          ]}
        }"#;
        let map = parse(text).expect("parse");
        assert_eq!(map[&Nation::EnglandAndWales].len(), 2);
        assert_eq!(map[&Nation::Scotland][0].date.to_string(), "2031-01-02");
        assert!(!map.contains_key(&Nation::NorthernIreland));
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"wales": {"events": []}}"#).is_err());
        assert!(
            parse(r#"{"scotland": {"events": [{"title": "x", "date": "2031-13-01"}]}}"#).is_err()
        );
    }
}
