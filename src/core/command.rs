//! Staff commands in a reply: what a member of staff asks redress to do when
//! they answer a notification from their own mail client.
//!
//! A staff reply means, by default, an internal note on the case. Commands
//! go on their own lines at the top of the reply, before any other text,
//! written with `#` or `/` in any case (`#RESOLVE Partly-Upheld`):
//!
//! | command                    | meaning                                             |
//! |----------------------------|-----------------------------------------------------|
//! | `#reply`                   | the text goes to the complainant as our response    |
//! | `#note`                    | the text is an internal note (the default)          |
//! | `#assign DEPARTMENT`       | hand the case to a department                       |
//! | `#formal`                  | move the case to the next (formal, appeal) stage    |
//! | `#hold REASON [until DATE]`| pause the case's clocks                             |
//! | `#resume`                  | restart them                                        |
//! | `#extend DATE\|N REASON`    | a new target date, or N more working days, and why  |
//! | `#resolve OUTCOME`         | close with an outcome; the text is the response     |
//! | `#external BODY`           | an awarding body or regulator was notified          |
//! | `#acknowledged [HOW]`      | the complainant was acknowledged another way        |
//!
//! How a reply is read ([`parse_reply`]):
//!
//! 1. The quoted history, the "-- " signature and phone footers go first
//!    ([`text::strip_quoted`]), so a bottom-poster's commands, written below
//!    the quote, are still at the top of their own text.
//! 2. The leading block of command lines is read; blank lines inside it are
//!    skipped, and the first other line ends it. Everything after is the
//!    text.
//! 3. A sign-off block at the end of the text ("Kind regards,\nJane") is
//!    moved out of the text into [`ParsedReply::signature`]: the text of a
//!    `#reply` or `#resolve` is the organisation's letter, and the letter
//!    template signs it. Only a short block goes (at most
//!    [`MAX_SIGNATURE_LINES`] lines, none longer than
//!    [`MAX_SIGNATURE_LINE_CHARS`]), so a heading that happens to read like a
//!    sign-off ("Best Practice") cannot cut the rest of a letter off. The
//!    caller still has the signature (for the audit trail) and the raw mail.
//!
//! What counts as a command line, decided so that prose is never taken for a
//! command and a typo is never taken for prose:
//!
//! - `#` then a letter is always a command attempt: an unknown word is a
//!   problem ("#frobnicate"), with a suggestion when it is close to a command.
//! - `#` then anything else (`#1 priority`, `# Heading`, `##`) is text.
//! - `/` then a word is an attempt only when the word is a command name:
//!   slashes start ordinary words ("/etc/passwd", "/s/ Jane", "/ and").
//! - Below the text's first line, a line starting in the first column with a
//!   command name (`#resolve upheld` under "Hi,") is a problem, not text:
//!   the sender meant a command and would otherwise be surprised. Indented
//!   lines are left alone, which keeps [`HELP`] (indented) harmless should
//!   an unstripped quote of it ever turn up.
//!
//! Nothing is guessed. Each command line must be exactly right: `#reply`
//! takes nothing after it, `#extend 10 days` is refused (working days or a
//! date, please), dates are day-first (`2026-12-20`, `20/12/2026`,
//! `20 December 2026`, `Sunday 20 December 2026`) with the year in full,
//! and a named weekday must match the date.
//!
//! Combinations are checked here, so nothing half-happens later: `#reply`
//! and `#resolve` both send the text and exclude each other and `#note`;
//! each needs text, as does `#note`; `#hold` with `#resume` and any command
//! twice are problems. Dates must be after `today`; whether a new target
//! date is later than the current one is the case's business, not the
//! parser's, as is whether a department exists.
//!
//! Invariants (the first two checked by property tests):
//! - [`parse_reply`] never panics;
//! - when [`ParsedReply::problems`] is empty, the combination rules hold;
//! - every problem is reported at once, so the sender can fix all of them in
//!   one go: the caller changes nothing when there is any, even the commands
//!   that were well formed.
//!
//! Pure: no I/O; `today` is a parameter.

use super::case::Outcome;
use super::text;
use chrono::{Datelike, NaiveDate, Weekday};
use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

/// A signature block longer than this stays in the text (see the module
/// docs).
pub const MAX_SIGNATURE_LINES: usize = 10;

/// A signature line longer than this is a paragraph, so the block stays in
/// the text.
pub const MAX_SIGNATURE_LINE_CHARS: usize = 100;

/// Every command, in a few lines: for the footer of every staff email and
/// the README. Indented so that, quoted back unstripped, it is not read as
/// commands (see the module docs).
pub const HELP: &str = "\
Reply above the quoted text. A reply with no command is an internal note.
Commands go on their own lines at the top of the reply, with # or /:
  #reply                     the text goes to the complainant as our response
  #note                      the text is an internal note (the default)
  #assign DEPARTMENT         hand the case to a department
  #formal                    move the case to the next stage (formal, appeal)
  #hold REASON [until DATE]  put the case on hold; #resume takes it off hold
  #extend DATE|N REASON      a new target date, or N more working days, and why
                             (the REASON of #hold and #extend is quoted in the
                             letter to the complainant: keep it fit to send)
  #resolve OUTCOME           close the case; the text is the written response
                             (upheld, partly-upheld, not-upheld, unfounded,
                             unsubstantiated, withdrawn)
  #external BODY             record that an awarding body or regulator was told
  #acknowledged [HOW]        record that the complainant was acknowledged
                             another way (by phone, in person, by post)
  Dates: 2026-12-20, 20/12/2026 or 20 December 2026.
Anything not understood changes nothing and comes back to you.";

/// The command names, without the prefix.
const NAMES: [&str; 10] = [
    "reply",
    "note",
    "assign",
    "formal",
    "hold",
    "resume",
    "extend",
    "resolve",
    "external",
    "acknowledged",
];

const DATE_FORMATS: &str = "2026-12-20, 20/12/2026 or 20 December 2026";

/// One thing a member of staff asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The text goes to the complainant as the organisation's response.
    Reply,
    /// The text is an internal note (also the meaning of no command at all).
    Note,
    Assign {
        department: String,
    },
    /// Move the case to the formal stage.
    Formal,
    Hold {
        reason: String,
        until: Option<NaiveDate>,
    },
    Resume,
    Extend {
        to: ExtendTo,
        reason: String,
    },
    /// Close the case; the text is the written response.
    Resolve {
        outcome: Outcome,
    },
    /// An awarding body or regulator was notified.
    External {
        body: String,
    },
    /// The complainant was acknowledged another way (by phone, in person,
    /// by post): the acknowledgement timer stops. `how` is what followed
    /// the command on its line (may be empty); the text is a note.
    Acknowledged {
        how: String,
    },
}

impl Command {
    /// The command as staff write it: "#reply".
    pub fn name(&self) -> &'static str {
        match self {
            Command::Reply => "#reply",
            Command::Note => "#note",
            Command::Assign { .. } => "#assign",
            Command::Formal => "#formal",
            Command::Hold { .. } => "#hold",
            Command::Resume => "#resume",
            Command::Extend { .. } => "#extend",
            Command::Resolve { .. } => "#resolve",
            Command::External { .. } => "#external",
            Command::Acknowledged { .. } => "#acknowledged",
        }
    }
}

/// The new target date an extension asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendTo {
    Date(NaiveDate),
    /// This many working days after the current target date.
    WorkingDays(u32),
}

/// A line that was not understood, and why, in words for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line as written (trimmed).
    pub line: String,
    pub why: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\": {}", self.line, self.why)
    }
}

/// A staff reply read: its commands in the order written, its text, and
/// what was not understood. When `problems` is not empty the caller changes
/// nothing and sends the problems back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedReply {
    pub commands: Vec<Command>,
    /// The sender's text below the commands: quotes, signature and footers
    /// removed. The note, or with `#reply` / `#resolve` the letter.
    pub text: String,
    /// The sign-off block taken off the end of the text, if any.
    pub signature: Option<String>,
    pub problems: Vec<Problem>,
}

impl ParsedReply {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether the text is a letter to the complainant (`#reply` or
    /// `#resolve`) rather than an internal note.
    pub fn text_goes_to_complainant(&self) -> bool {
        self.commands
            .iter()
            .any(|c| matches!(c, Command::Reply | Command::Resolve { .. }))
    }
}

/// Reads a staff member's reply (the decoded text body, quotes and all).
/// `today` is the local date the reply is read on: dates in commands must
/// be after it.
pub fn parse_reply(body: &str, today: NaiveDate) -> ParsedReply {
    let stripped = text::strip_quoted(body);
    let lines: Vec<&str> = stripped.lines().collect();

    // The leading block of command lines, blank lines allowed between them.
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        match attempt(line) {
            Some((word, args)) => attempts.push(Attempt {
                line: line.trim(),
                word,
                args,
                malformed: false,
            }),
            None => break,
        }
        i += 1;
    }
    let rest = &lines[i..];

    let mut problems = Vec::new();
    let mut commands = Vec::new();
    for a in &mut attempts {
        match parse_command(&a.word, a.args, today) {
            Ok(c) => commands.push(c),
            Err(why) => {
                a.malformed = true;
                problems.push(Problem {
                    line: a.line.to_string(),
                    why,
                });
            }
        }
    }

    // A command written below the start of the text.
    for line in rest {
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        if let Some((word, _)) = attempt(line) {
            if NAMES.contains(&word.as_str()) {
                problems.push(Problem {
                    line: line.trim().to_string(),
                    why: format!(
                        "#{word} is below the start of your text; commands only count on \
                         their own lines at the top of the reply, before any other text"
                    ),
                });
            }
        }
    }

    let whole = rest.join("\n");
    let (text, signature) = split_signature(whole.trim_end());
    let text = text.trim_end().to_string();
    combination_problems(&attempts, text.is_empty(), &mut problems);

    ParsedReply {
        commands,
        text,
        signature: signature.map(str::to_string),
        problems,
    }
}

/// A line of the command block.
struct Attempt<'a> {
    /// Trimmed.
    line: &'a str,
    /// The command word, lower case, without the prefix.
    word: String,
    args: &'a str,
    /// Whether the line itself is wrong (a problem already says why).
    malformed: bool,
}

/// The command word (lower case, without the prefix) and the rest of the
/// line, if `line` is a command attempt (see the module docs).
fn attempt(line: &str) -> Option<(String, &str)> {
    let t = line.trim();
    let prefix = t.chars().next()?;
    if prefix != '#' && prefix != '/' {
        return None;
    }
    // Both prefixes are one byte long.
    let after = &t[1..];
    let (word, args) = match after.find(char::is_whitespace) {
        Some(k) => (&after[..k], after[k..].trim()),
        None => (after, ""),
    };
    let first = word.chars().next()?;
    let word = word.to_lowercase();
    let is_attempt = match prefix {
        '#' => first.is_alphabetic(),
        _ => NAMES.contains(&word.as_str()),
    };
    is_attempt.then_some((word, args))
}

fn parse_command(word: &str, args: &str, today: NaiveDate) -> Result<Command, String> {
    match word {
        "reply" => no_args(word, args, Command::Reply),
        "note" => no_args(word, args, Command::Note),
        "formal" => no_args(word, args, Command::Formal),
        "resume" => no_args(word, args, Command::Resume),
        "acknowledged" => Ok(Command::Acknowledged { how: words(args) }),
        "assign" => match words(args) {
            d if d.is_empty() => Err("#assign needs a department, e.g. #assign Finance".into()),
            department => Ok(Command::Assign { department }),
        },
        "external" => match words(args) {
            b if b.is_empty() => Err(
                "#external needs the name of the awarding body or regulator, e.g. #external Ofqual"
                    .into(),
            ),
            body => Ok(Command::External { body }),
        },
        "hold" => parse_hold(args, today),
        "extend" => parse_extend(args, today),
        "resolve" => parse_resolve(args),
        _ => Err(unknown(word)),
    }
}

fn no_args(word: &str, args: &str, command: Command) -> Result<Command, String> {
    if args.is_empty() {
        Ok(command)
    } else if matches!(command, Command::Reply | Command::Note) {
        Err(format!(
            "#{word} takes nothing after it on its line; put your text on the lines below it"
        ))
    } else {
        Err(format!("#{word} takes nothing after it on its line"))
    }
}

fn unknown(word: &str) -> String {
    let list = NAMES.map(|n| format!("#{n}")).join(", ");
    let close = NAMES
        .iter()
        .map(|n| (edit_distance(word, n), n))
        .filter(|(d, n)| *d <= 2 && *d < n.len())
        .min();
    match close {
        Some((_, n)) => {
            format!("#{word} is not a command (did you mean #{n}?); the commands are {list}")
        }
        None => format!("#{word} is not a command; the commands are {list}"),
    }
}

/// Levenshtein distance over characters, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The words of `s` with single spaces between them.
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn outcome_list() -> String {
    Outcome::ALL.map(Outcome::as_str).join(", ")
}

fn parse_resolve(args: &str) -> Result<Command, String> {
    let written = words(args.trim_end_matches('.'));
    if written.is_empty() {
        return Err(format!(
            "#resolve needs an outcome: one of {}",
            outcome_list()
        ));
    }
    // Outcome's FromStr accepts "partly upheld" and "partly_upheld" too.
    written
        .replace(' ', "-")
        .parse::<Outcome>()
        .map(|outcome| Command::Resolve { outcome })
        .map_err(|_| {
            format!(
                "\"{written}\" is not an outcome; #resolve needs one of {}",
                outcome_list()
            )
        })
}

fn parse_hold(args: &str, today: NaiveDate) -> Result<Command, String> {
    let all: Vec<&str> = args.split_whitespace().collect();
    let mut reason = all.as_slice();
    let mut until = None;
    if let Some(k) = all.iter().rposition(|w| w.eq_ignore_ascii_case("until")) {
        let tail = all[k + 1..].join(" ");
        let tail = tail.trim_end_matches('.');
        match read_date(tail) {
            DateRead::Date(d) if d <= today => {
                return Err(format!(
                    "#hold: {} is not after today; the hold would already be over",
                    text::uk_long_date(d)
                ))
            }
            DateRead::Date(d) => {
                until = Some(d);
                reason = &all[..k];
            }
            DateRead::Invalid(why) => return Err(format!("#hold: {why}")),
            // "waiting until the tutor is back": part of the reason, unless
            // the sender plainly tried to write a date.
            DateRead::NotADate if tail.is_empty() || looks_like_a_date(tail) => {
                return Err(format!(
                    "#hold: after \"until\" give a date such as {DATE_FORMATS}"
                ))
            }
            DateRead::NotADate => {}
        }
    }
    let reason = reason.join(" ");
    if reason.is_empty() {
        return Err(
            "#hold needs a reason, e.g. #hold waiting for the tutor's statement until 20/12/2026"
                .into(),
        );
    }
    Ok(Command::Hold { reason, until })
}

const EXTEND_USAGE: &str = "#extend needs a date (2026-12-20 or 20/12/2026 or 20 December 2026) \
     or a number of working days, then a reason, e.g. #extend 5 waiting for a witness statement";

/// A number at the start of an `#extend`, as a word of its own.
static NUMBER_AT_START: LazyLock<Regex> = LazyLock::new(|| re(r"^([0-9]+)(?:\s+|$)"));

/// The unit after that number, if the sender wrote one.
static UNIT_AT_START: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^(working\s+)?(?:days?|weeks?|months?)\b"));

fn parse_extend(args: &str, today: NaiveDate) -> Result<Command, String> {
    let (to, after) = if let Some((read, after)) = date_at_start(args) {
        match read {
            DateRead::Date(d) if d <= today => {
                return Err(format!(
                    "#extend: {} is not after today",
                    text::uk_long_date(d)
                ))
            }
            DateRead::Date(d) => (ExtendTo::Date(d), after),
            DateRead::Invalid(why) => return Err(format!("#extend: {why}")),
            DateRead::NotADate => return Err(EXTEND_USAGE.into()),
        }
    } else if let Some(c) = NUMBER_AT_START.captures(args) {
        let mut after = &args[c.get(0).map_or(0, |m| m.end())..];
        if let Some(u) = UNIT_AT_START.captures(after) {
            let unit = u.get(0).map_or("", |m| m.as_str());
            if u.get(1).is_none() || !unit.to_ascii_lowercase().contains("day") {
                return Err(format!(
                    "#extend counts working days, not \"{unit}\": write #extend 5 REASON \
                     (or 5 working days REASON), or give the new date"
                ));
            }
            after = &after[unit.len()..];
        }
        let n = c[1]
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=365).contains(n))
            .ok_or("#extend: the number of working days must be from 1 to 365")?;
        (ExtendTo::WorkingDays(n), after)
    } else {
        return Err(EXTEND_USAGE.into());
    };
    let reason = words(after.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '-' | '–' | '—' | ':' | ',' | ';')
    }));
    if reason.is_empty() {
        return Err(
            "#extend needs a reason after the date or number of working days, \
                    e.g. #extend 5 waiting for a witness statement"
                .into(),
        );
    }
    Ok(Command::Extend { to, reason })
}

/// Problems that come from the commands together and from the text.
fn combination_problems(attempts: &[Attempt], no_text: bool, problems: &mut Vec<Problem>) {
    let first = |name: &str| attempts.iter().find(|a| a.word == name);
    let line_of = |name: &str| first(name).map(|a| a.line.to_string());
    for (k, a) in attempts.iter().enumerate() {
        if NAMES.contains(&a.word.as_str()) && attempts[..k].iter().any(|b| b.word == a.word) {
            problems.push(Problem {
                line: a.line.to_string(),
                why: format!(
                    "#{} is given more than once; give each command once",
                    a.word
                ),
            });
        }
    }
    let conflicts = [
        (
            "reply",
            "resolve",
            "#reply and #resolve both send your text to the complainant; \
             use #resolve OUTCOME alone to send the written response and close the case",
        ),
        (
            "note",
            "reply",
            "#note keeps your text internal but #reply sends it to the complainant; use one",
        ),
        (
            "note",
            "resolve",
            "#note keeps your text internal but #resolve sends it to the complainant \
             as the written response; use one",
        ),
        (
            "hold",
            "resume",
            "#hold and #resume cancel each other out; use one",
        ),
    ];
    for (a, b, why) in conflicts {
        if let (Some(_), Some(lb)) = (line_of(a), line_of(b)) {
            problems.push(Problem {
                line: lb,
                why: why.into(),
            });
        }
    }
    if no_text {
        let needs = [
            (
                "reply",
                "#reply needs the response to send: write it below #reply",
            ),
            (
                "resolve",
                "#resolve needs the written response to send: write it below #resolve",
            ),
            ("note", "#note needs the note: write it below #note"),
        ];
        for (name, why) in needs {
            // A malformed line ("#reply Dear Ms Smith") has said enough.
            if let Some(a) = first(name).filter(|a| !a.malformed) {
                problems.push(Problem {
                    line: a.line.to_string(),
                    why: why.into(),
                });
            }
        }
    }
}

/// The text without a short sign-off block at its end, and the block.
fn split_signature(text: &str) -> (&str, Option<&str>) {
    let Some(sig) = text::signature(text) else {
        return (text, None);
    };
    // `signature` returns a slice of its input; find where it starts.
    let start = (sig.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    let fits = text.get(start..).is_some_and(|t| t.starts_with(sig));
    let lines: Vec<&str> = sig.lines().filter(|l| !l.trim().is_empty()).collect();
    let short = lines.len() <= MAX_SIGNATURE_LINES
        && lines
            .iter()
            .all(|l| l.chars().count() <= MAX_SIGNATURE_LINE_CHARS);
    if fits && short {
        (&text[..start], Some(sig))
    } else {
        (text, None)
    }
}

// ---- dates ----------------------------------------------------------------

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("command.rs pattern {pattern:?}: {e}"))
}

/// Something written like a date, at the start of a string: ISO, day-first
/// numeric, or "[Weekday] 20[th] December 2026". The numbers and names are
/// checked after, so that an impossible date is reported, not skipped.
static DATE_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^(?:
        (?P<iy>[0-9]{4})-(?P<im>[0-9]{1,2})-(?P<id>[0-9]{1,2})
      | (?P<nd>[0-9]{1,2})[/.-](?P<nm>[0-9]{1,2})[/.-](?P<ny>[0-9]+)
      | (?:(?P<wd>\p{L}+)\.?,?\s+)?
        (?P<ld>[0-9]{1,2})(?:st|nd|rd|th)?\s+(?P<lm>\p{L}+)\.?,?\s+(?P<ly>[0-9]+)
    )\b")
});

/// What a piece of text says as a date.
#[derive(Debug, PartialEq, Eq)]
enum DateRead {
    Date(NaiveDate),
    /// Written like a date but not one, and why.
    Invalid(String),
    NotADate,
}

/// A whole string read as a date, written as staff write them in
/// commands (`2026-12-20`, `20/12/2026`, `20 December 2026`), or why not.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    match read_date(s.trim()) {
        DateRead::Date(d) => Ok(d),
        DateRead::Invalid(why) => Err(why),
        DateRead::NotADate => Err(format!(
            "{:?} is not a date; write dates as {DATE_FORMATS}",
            s.trim()
        )),
    }
}

/// A whole string read as a date.
fn read_date(s: &str) -> DateRead {
    match date_at_start(s) {
        Some((read, rest)) if rest.trim().is_empty() => read,
        Some(_) | None => DateRead::NotADate,
    }
}

/// A date at the start of `s` and what follows it, if `s` starts with
/// something written like one.
fn date_at_start(s: &str) -> Option<(DateRead, &str)> {
    let c = DATE_SHAPE.captures(s)?;
    let whole = c.get(0)?;
    let written = whole.as_str();
    let num = |name: &str| c.name(name).and_then(|m| m.as_str().parse::<u32>().ok());
    let (day, month, year) = if let Some(y) = c.name("iy") {
        (num("id"), num("im"), y.as_str())
    } else if let Some(y) = c.name("ny") {
        (num("nd"), num("nm"), y.as_str())
    } else {
        let month_name = c.name("lm").map_or("", |m| m.as_str());
        let Some(month) = month_number(month_name) else {
            return Some((
                DateRead::Invalid(format!(
                    "\"{month_name}\" is not a month; write dates as {DATE_FORMATS}"
                )),
                &s[whole.end()..],
            ));
        };
        (
            num("ld"),
            Some(month),
            c.name("ly").map_or("", |m| m.as_str()),
        )
    };
    let rest = &s[whole.end()..];
    if year.len() != 4 {
        return Some((
            DateRead::Invalid(format!(
                "write the year in full in \"{written}\", as in {DATE_FORMATS}"
            )),
            rest,
        ));
    }
    let date = match (day, month, year.parse::<i32>().ok()) {
        (Some(d), Some(m), Some(y)) => NaiveDate::from_ymd_opt(y, m, d),
        _ => None,
    };
    let Some(date) = date else {
        return Some((
            DateRead::Invalid(format!("there is no such date as \"{written}\"")),
            rest,
        ));
    };
    if let Some(wd) = c.name("wd") {
        match weekday(wd.as_str()) {
            Some(w) if w == date.weekday() => {}
            Some(_) => {
                return Some((
                    DateRead::Invalid(format!(
                        "\"{written}\" does not add up: that date is {}",
                        text::uk_long_date(date)
                    )),
                    rest,
                ))
            }
            None => {
                return Some((
                    DateRead::Invalid(format!(
                        "\"{}\" is not a day of the week; write dates as {DATE_FORMATS}",
                        wd.as_str()
                    )),
                    rest,
                ))
            }
        }
    }
    Some((DateRead::Date(date), rest))
}

/// Whether text that is not a date was meant as one: it has a digit in it,
/// or starts with a month or a day of the week ("until Friday").
fn looks_like_a_date(s: &str) -> bool {
    let first = s
        .split(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or_default();
    s.chars().any(|c| c.is_ascii_digit())
        || month_number(first).is_some()
        || weekday(first).is_some()
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// 1 to 12 for a month's English name or its three-letter abbreviation
/// ("Sept" too).
fn month_number(name: &str) -> Option<u32> {
    let name = name.to_lowercase();
    if name == "sept" {
        return Some(9);
    }
    let k = MONTHS
        .iter()
        .position(|m| *m == name || (name.len() == 3 && m.starts_with(&name)))?;
    u32::try_from(k + 1).ok()
}

/// A day of the week's English name or its three-letter abbreviation.
fn weekday(name: &str) -> Option<Weekday> {
    let name = name.to_lowercase();
    [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ]
    .into_iter()
    .find(|(full, _)| *full == name || (name.len() == 3 && full.starts_with(&name)))
    .map(|(_, w)| w)
}

/// Why `response` (text for the complainant) may not go, if it carries
/// something internal: one of the case's `notes`, or the staff emails'
/// help text (a quote the mail client did not mark as one). Whitespace is
/// ignored; notes shorter than 24 characters are too common to tell.
pub fn internal_text_in(response: &str, notes: &[&str]) -> Option<&'static str> {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = squash(response);
    if HELP
        .lines()
        .filter(|l| l.trim().len() > 20)
        .any(|l| flat.contains(&squash(l)))
    {
        return Some(
            "the text seems to include the staff email it answers (the commands help); write the response above the quoted mail",
        );
    }
    notes
        .iter()
        .map(|n| squash(n))
        .any(|n| n.len() >= 24 && flat.contains(&n))
        .then_some(
            "the text contains an internal note of the case; internal notes never go to the complainant",
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    /// A Monday.
    fn today() -> NaiveDate {
        d("2026-11-23")
    }

    fn parse(body: &str) -> ParsedReply {
        parse_reply(body, today())
    }

    /// The commands of a reply that must have no problems.
    fn ok(body: &str) -> Vec<Command> {
        let p = parse(body);
        assert!(p.is_ok(), "{body:?}: {:?}", p.problems);
        p.commands
    }

    /// The one problem of a reply: its line and why.
    fn problem(body: &str) -> Problem {
        let p = parse(body);
        assert_eq!(p.problems.len(), 1, "{body:?}: {:?}", p.problems);
        p.problems[0].clone()
    }

    fn hold(reason: &str, until: Option<&str>) -> Command {
        Command::Hold {
            reason: reason.into(),
            until: until.map(d),
        }
    }

    fn extend(to: ExtendTo, reason: &str) -> Command {
        Command::Extend {
            to,
            reason: reason.into(),
        }
    }

    // ---- each command -----------------------------------------------------

    #[test]
    fn each_command() {
        let cases: Vec<(&str, Vec<Command>)> = vec![
            ("#reply\nDear Ms Smith,\nSorry.", vec![Command::Reply]),
            ("#note\nRang her.", vec![Command::Note]),
            (
                "#assign Finance\nOver to you.",
                vec![Command::Assign {
                    department: "Finance".into(),
                }],
            ),
            (
                "#assign   Quality   Team",
                vec![Command::Assign {
                    department: "Quality Team".into(),
                }],
            ),
            ("#formal", vec![Command::Formal]),
            ("#resume", vec![Command::Resume]),
            (
                "#acknowledged\nPhoned her on Tuesday.",
                vec![Command::Acknowledged { how: String::new() }],
            ),
            (
                "#acknowledged  by phone, 24/11\nShe will write again.",
                vec![Command::Acknowledged {
                    how: "by phone, 24/11".into(),
                }],
            ),
            (
                "#hold waiting for the tutor",
                vec![hold("waiting for the tutor", None)],
            ),
            (
                "#hold tutor on leave until 2026-12-20",
                vec![hold("tutor on leave", Some("2026-12-20"))],
            ),
            (
                "#hold tutor on leave UNTIL 20/12/2026.",
                vec![hold("tutor on leave", Some("2026-12-20"))],
            ),
            (
                "#hold tutor on leave until Sunday 20 December 2026",
                vec![hold("tutor on leave", Some("2026-12-20"))],
            ),
            // "until" that is not followed by a date is part of the reason.
            (
                "#hold waiting until the tutor is back",
                vec![hold("waiting until the tutor is back", None)],
            ),
            (
                "#hold wait until the report, until 1 Dec 2026",
                vec![hold("wait until the report,", Some("2026-12-01"))],
            ),
            (
                "#extend 5 waiting for witness statement",
                vec![extend(
                    ExtendTo::WorkingDays(5),
                    "waiting for witness statement",
                )],
            ),
            (
                "#extend 10 working days - the centre is closed",
                vec![extend(ExtendTo::WorkingDays(10), "the centre is closed")],
            ),
            (
                "#extend 1 working day: one more call",
                vec![extend(ExtendTo::WorkingDays(1), "one more call")],
            ),
            (
                "#extend 365 long one",
                vec![extend(ExtendTo::WorkingDays(365), "long one")],
            ),
            (
                "#extend 2026-12-20 witness",
                vec![extend(ExtendTo::Date(d("2026-12-20")), "witness")],
            ),
            (
                "#extend 20/12/2026 witness",
                vec![extend(ExtendTo::Date(d("2026-12-20")), "witness")],
            ),
            (
                "#extend 20.12.2026, witness",
                vec![extend(ExtendTo::Date(d("2026-12-20")), "witness")],
            ),
            (
                "#extend 20 December 2026 witness",
                vec![extend(ExtendTo::Date(d("2026-12-20")), "witness")],
            ),
            (
                "#extend 20th Dec 2026 witness",
                vec![extend(ExtendTo::Date(d("2026-12-20")), "witness")],
            ),
            (
                "#extend Sunday, 20 December 2026 witness",
                vec![extend(ExtendTo::Date(d("2026-12-20")), "witness")],
            ),
            (
                "#extend 1 Sept 2027 witness",
                vec![extend(ExtendTo::Date(d("2027-09-01")), "witness")],
            ),
            (
                "#external Ofqual",
                vec![Command::External {
                    body: "Ofqual".into(),
                }],
            ),
            (
                "#external Education and Skills Funding Agency",
                vec![Command::External {
                    body: "Education and Skills Funding Agency".into(),
                }],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(ok(body), expected, "{body:?}");
        }
    }

    #[test]
    fn every_outcome_and_its_spellings() {
        for outcome in Outcome::ALL {
            let body = format!("#resolve {}\nOur response.", outcome.as_str());
            assert_eq!(ok(&body), [Command::Resolve { outcome }], "{body}");
        }
        for written in [
            "partly-upheld",
            "Partly-Upheld",
            "partly upheld",
            "PARTLY  UPHELD",
            "partly_upheld",
            "partly upheld.",
        ] {
            let body = format!("#resolve {written}\nOur response.");
            assert_eq!(
                ok(&body),
                [Command::Resolve {
                    outcome: Outcome::PartlyUpheld
                }],
                "{body}"
            );
        }
        assert_eq!(
            ok("#resolve not upheld\nOur response."),
            [Command::Resolve {
                outcome: Outcome::NotUpheld
            }]
        );
    }

    #[test]
    fn keywords_in_any_case_and_with_a_slash() {
        for body in [
            "#REPLY\nHi",
            "#Reply\nHi",
            "/reply\nHi",
            "/REPLY\nHi",
            "  #reply  \nHi",
        ] {
            assert_eq!(ok(body), [Command::Reply], "{body:?}");
        }
        assert_eq!(
            ok("/resolve Partly-Upheld\nText"),
            [Command::Resolve {
                outcome: Outcome::PartlyUpheld
            }]
        );
        assert_eq!(
            ok("#HOLD sick Until 20 DECEMBER 2026"),
            [hold("sick", Some("2026-12-20"))]
        );
    }

    #[test]
    fn several_commands_in_order_with_blank_lines_between() {
        let body = "#assign Finance\n\n/hold waiting for invoices until 2026-12-01\n#note\n\nInvoices requested.\n";
        let p = parse(body);
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(
            p.commands,
            [
                Command::Assign {
                    department: "Finance".into()
                },
                hold("waiting for invoices", Some("2026-12-01")),
                Command::Note,
            ]
        );
        assert_eq!(p.text, "Invoices requested.");
        assert!(!p.text_goes_to_complainant());

        let p = parse("#formal\n#resolve upheld\n#external Ofqual\nDear Ms Smith,\n\nWe agree.");
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(p.commands.len(), 3);
        assert_eq!(p.text, "Dear Ms Smith,\n\nWe agree.");
        assert!(p.text_goes_to_complainant());
    }

    // ---- text and no commands ----------------------------------------------

    #[test]
    fn no_commands_means_a_note_of_the_whole_text() {
        let p = parse("\n\nSpoke to the tutor.\nShe will call back.\n\n");
        assert!(p.is_ok());
        assert!(p.commands.is_empty());
        assert_eq!(p.text, "Spoke to the tutor.\nShe will call back.");
        let empty = parse("");
        assert!(empty.is_ok() && empty.commands.is_empty() && empty.text.is_empty());
    }

    #[test]
    fn what_is_text_and_not_a_command() {
        for body in [
            "#1 priority for us",
            "# Heading",
            "## notes",
            "#",
            "/s/ John",
            "/etc/passwd is not relevant",
            "/ and another thing",
            "/resolved upheld",
            "and/or",
            "Hi,\n  #resolve upheld (indented, so text)",
        ] {
            let p = parse(body);
            assert!(p.is_ok(), "{body:?}: {:?}", p.problems);
            assert!(p.commands.is_empty(), "{body:?}");
            assert_eq!(p.text, body.trim(), "{body:?}");
        }
        // A command line ends at the first line of text; "#" lines after
        // that are text unless they name a command.
        let p = parse("#note\nRang.\n#1 thing: the invoice\n#hashtag");
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(p.text, "Rang.\n#1 thing: the invoice\n#hashtag");
    }

    // ---- problems ---------------------------------------------------------

    #[test]
    fn malformed_commands() {
        let outcomes = "upheld, partly-upheld, not-upheld, unfounded, unsubstantiated, withdrawn";
        let cases = [
            ("#frobnicate\nText", "#frobnicate is not a command; the commands are #reply, #note, #assign, #formal, #hold, #resume, #extend, #resolve, #external, #acknowledged".to_string()),
            ("#resolved upheld\nText", "#resolved is not a command (did you mean #resolve?); the commands are #reply, #note, #assign, #formal, #hold, #resume, #extend, #resolve, #external, #acknowledged".to_string()),
            ("#rely\nText", "#rely is not a command (did you mean #reply?); the commands are #reply, #note, #assign, #formal, #hold, #resume, #extend, #resolve, #external, #acknowledged".to_string()),
            ("#resolve\nText", format!("#resolve needs an outcome: one of {outcomes}")),
            ("#resolve partially upheld\nText", format!("\"partially upheld\" is not an outcome; #resolve needs one of {outcomes}")),
            ("#resolve upheld - apologised\nText", format!("\"upheld - apologised\" is not an outcome; #resolve needs one of {outcomes}")),
            ("#assign", "#assign needs a department, e.g. #assign Finance".into()),
            ("#external", "#external needs the name of the awarding body or regulator, e.g. #external Ofqual".into()),
            ("#reply Dear Ms Smith", "#reply takes nothing after it on its line; put your text on the lines below it".into()),
            ("#formal now please", "#formal takes nothing after it on its line".into()),
            ("#acknowledge\nRang her.", "#acknowledge is not a command (did you mean #acknowledged?); the commands are #reply, #note, #assign, #formal, #hold, #resume, #extend, #resolve, #external, #acknowledged".into()),
            ("#hold", "#hold needs a reason, e.g. #hold waiting for the tutor's statement until 20/12/2026".into()),
            ("#hold until 20/12/2026", "#hold needs a reason, e.g. #hold waiting for the tutor's statement until 20/12/2026".into()),
            ("#hold sick until", "#hold: after \"until\" give a date such as 2026-12-20, 20/12/2026 or 20 December 2026".into()),
            ("#hold sick until Friday", "#hold: after \"until\" give a date such as 2026-12-20, 20/12/2026 or 20 December 2026".into()),
            ("#hold sick until 20 December", "#hold: after \"until\" give a date such as 2026-12-20, 20/12/2026 or 20 December 2026".into()),
            ("#hold sick until 12/20/2026", "#hold: there is no such date as \"12/20/2026\"".into()),
            ("#hold sick until 31/11/2026", "#hold: there is no such date as \"31/11/2026\"".into()),
            ("#hold sick until 20/12/26", "#hold: write the year in full in \"20/12/26\", as in 2026-12-20, 20/12/2026 or 20 December 2026".into()),
            ("#hold sick until 23/11/2026", "#hold: Monday 23 November 2026 is not after today; the hold would already be over".into()),
            ("#hold sick until Monday 20 December 2026", "#hold: \"Monday 20 December 2026\" does not add up: that date is Sunday 20 December 2026".into()),
            ("#hold sick until Funday 20 December 2026", "#hold: \"Funday\" is not a day of the week; write dates as 2026-12-20, 20/12/2026 or 20 December 2026".into()),
            ("#hold sick until 20 Decembre 2026", "#hold: \"Decembre\" is not a month; write dates as 2026-12-20, 20/12/2026 or 20 December 2026".into()),
            ("#extend", EXTEND_USAGE.into()),
            ("#extend witness statement", EXTEND_USAGE.into()),
            ("#extend 5th witness", EXTEND_USAGE.into()),
            ("#extend 5/12 witness", EXTEND_USAGE.into()),
            ("#extend December 20, 2026 witness", EXTEND_USAGE.into()),
            ("#extend 5", "#extend needs a reason after the date or number of working days, e.g. #extend 5 waiting for a witness statement".into()),
            ("#extend 20/12/2026", "#extend needs a reason after the date or number of working days, e.g. #extend 5 waiting for a witness statement".into()),
            ("#extend 0 nothing", "#extend: the number of working days must be from 1 to 365".into()),
            ("#extend 366 long", "#extend: the number of working days must be from 1 to 365".into()),
            ("#extend 99999999999999 long", "#extend: the number of working days must be from 1 to 365".into()),
            ("#extend 10 days witness", "#extend counts working days, not \"days\": write #extend 5 REASON (or 5 working days REASON), or give the new date".into()),
            ("#extend 2 weeks witness", "#extend counts working days, not \"weeks\": write #extend 5 REASON (or 5 working days REASON), or give the new date".into()),
            ("#extend 2 working weeks witness", "#extend counts working days, not \"working weeks\": write #extend 5 REASON (or 5 working days REASON), or give the new date".into()),
            ("#extend 30/02/2027 witness", "#extend: there is no such date as \"30/02/2027\"".into()),
            ("#extend 2026-11-01 witness", "#extend: Sunday 1 November 2026 is not after today".into()),
        ];
        for (body, why) in cases {
            let p = parse(body);
            assert_eq!(p.problems.len(), 1, "{body:?}: {:?}", p.problems);
            assert_eq!(p.problems[0].why, why, "{body:?}");
            assert_eq!(
                p.problems[0].line,
                body.lines().next().unwrap_or_default().trim(),
                "{body:?}"
            );
            assert!(p.commands.is_empty(), "{body:?}");
        }
    }

    #[test]
    fn combinations() {
        let cases = [
            ("#reply\n#resolve upheld\nText", "#resolve upheld", "#reply and #resolve both send your text to the complainant; use #resolve OUTCOME alone to send the written response and close the case"),
            ("#note\n#reply\nText", "#reply", "#note keeps your text internal but #reply sends it to the complainant; use one"),
            ("#resolve upheld\n#note\nText", "#resolve upheld", "#note keeps your text internal but #resolve sends it to the complainant as the written response; use one"),
            ("#hold sick\n#resume", "#resume", "#hold and #resume cancel each other out; use one"),
            ("#assign A\n#assign B", "#assign B", "#assign is given more than once; give each command once"),
            ("#note\n#NOTE\nText", "#NOTE", "#note is given more than once; give each command once"),
            ("#reply", "#reply", "#reply needs the response to send: write it below #reply"),
            ("#reply\n\n-- \nJane", "#reply", "#reply needs the response to send: write it below #reply"),
            ("#resolve withdrawn", "#resolve withdrawn", "#resolve needs the written response to send: write it below #resolve"),
            ("#note", "#note", "#note needs the note: write it below #note"),
            ("Hi,\n#resolve upheld\nWe agree.", "#resolve upheld", "#resolve is below the start of your text; commands only count on their own lines at the top of the reply, before any other text"),
            ("#note\nRang.\n/reply", "/reply", "#reply is below the start of your text; commands only count on their own lines at the top of the reply, before any other text"),
        ];
        for (body, line, why) in cases {
            let p = problem(body);
            assert_eq!((p.line.as_str(), p.why.as_str()), (line, why), "{body:?}");
        }
        // A command needing nothing more is fine without text.
        assert!(parse("#assign Finance").is_ok());
        assert!(parse("#hold sick\n#assign HR").is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let body =
            "#frobnicate\n#resolve maybe\n#reply\n#extend 0 x\n#hold sick\n#resume\n#reply\n";
        let p = parse(body);
        let whys: Vec<&str> = p.problems.iter().map(|p| p.why.as_str()).collect();
        assert_eq!(p.problems.len(), 7, "{whys:#?}");
        assert!(whys[0].starts_with("#frobnicate is not a command"));
        assert!(whys[1].starts_with("\"maybe\" is not an outcome"));
        assert!(whys[2].starts_with("#extend: the number"));
        assert!(whys[3].starts_with("#reply is given more than once"));
        assert!(whys[4].starts_with("#reply and #resolve"));
        assert!(whys[5].starts_with("#hold and #resume"));
        // "#resolve maybe" has its own problem, so no second one for the
        // missing text.
        assert!(whys[6].starts_with("#reply needs the response"));
        // The well-formed ones are still listed, for the caller's report,
        // but the caller acts on none of them.
        assert!(!p.is_ok());
        assert_eq!(
            p.problems[1].to_string(),
            format!("\"#resolve maybe\": {}", whys[1])
        );
    }

    // ---- quotes and signatures -----------------------------------------------

    #[test]
    fn reply_above_an_outlook_quote() {
        let body = "#reply\r\n\r\nDear Ms Smith,\r\n\r\nWe have refunded the fee.\r\n\r\n\
            From: OPP Complaints <complaints@opp.example>\r\n\
            Sent: 23 November 2026 10:00\r\n\
            To: Jane Smith <jane@opp.example>\r\n\
            Subject: [OPP-2026-0042] New complaint\r\n\r\n\
            A new complaint has arrived.\r\n  #reply   the text goes to the complainant\r\n";
        let p = parse(body);
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(p.commands, [Command::Reply]);
        assert_eq!(p.text, "Dear Ms Smith,\n\nWe have refunded the fee.");
    }

    #[test]
    fn reply_above_gmail_apple_and_thunderbird_quotes() {
        let quotes = [
            "On Mon, 23 Nov 2026 at 10:00, Redress <complaints@opp.example> wrote:\n\n> A new complaint has arrived.\n> #reply\n",
            "On 23 Nov 2026, at 10:00, OPP Complaints <complaints@opp.example> wrote:\n\n> A new complaint has arrived.\n> \n> #resolve upheld\n",
            "On 23/11/2026 10:00, OPP Complaints wrote:\n> A new complaint has arrived.\n",
            "-----Original Message-----\nFrom: OPP Complaints\nSent: 23 November 2026 10:00\nSubject: x\n\n#reply\n",
        ];
        for quote in quotes {
            let body =
                format!("/resolve partly upheld\n\nDear Mr Jones,\n\nWe agree in part.\n\n{quote}");
            let p = parse(&body);
            assert!(p.is_ok(), "{body:?}: {:?}", p.problems);
            assert_eq!(
                p.commands,
                [Command::Resolve {
                    outcome: Outcome::PartlyUpheld
                }],
                "{body:?}"
            );
            assert_eq!(p.text, "Dear Mr Jones,\n\nWe agree in part.", "{body:?}");
        }
    }

    #[test]
    fn bottom_posted_commands_are_at_the_top_of_the_own_text() {
        let body = "On 23/11/2026 10:00, OPP Complaints <complaints@opp.example> wrote:\n> A new complaint.\n\n#assign Finance\nTheirs, I think.\n";
        let p = parse(body);
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(
            p.commands,
            [Command::Assign {
                department: "Finance".into()
            }]
        );
        assert_eq!(p.text, "Theirs, I think.");
    }

    #[test]
    fn signatures_are_kept_out_of_the_text() {
        let cases = [
            // The "-- " delimiter: gone with strip_quoted.
            ("#reply\nDear Ms Smith,\nSorted.\n\n-- \nJane Smith\nHead of Training\n", "Dear Ms Smith,\nSorted.", None),
            ("#reply\nDear Ms Smith,\nSorted.\n\nKind regards,\nJane\n", "Dear Ms Smith,\nSorted.", Some("Kind regards,\nJane")),
            ("#resolve upheld\nDear Ms Smith,\n\nWe agree.\n\nYours sincerely\n\nJane Smith\nHead of Training\nOPP Training\n01254 123456\n\nSent from my iPhone\n",
                "Dear Ms Smith,\n\nWe agree.", Some("Yours sincerely\n\nJane Smith\nHead of Training\nOPP Training\n01254 123456")),
            ("Rang her.\nThanks, Jane", "Rang her.", Some("Thanks, Jane")),
            // A sign-off on the first line of the text is the text.
            ("#note\nThanks\nJane", "Thanks\nJane", None),
        ];
        for (body, text, sig) in cases {
            let p = parse(body);
            assert!(p.is_ok(), "{body:?}: {:?}", p.problems);
            assert_eq!(p.text, text, "{body:?}");
            assert_eq!(p.signature.as_deref(), sig, "{body:?}");
        }
    }

    #[test]
    fn a_long_block_after_a_sign_off_like_line_stays_in_the_letter() {
        let para = "We looked at every part of your complaint again and spoke to the tutor and the centre manager, who both agree that the assessment was late.";
        let body = format!("#reply\nDear Ms Smith,\n\nBest Practice\n\n{para}\n\n{para}\n");
        let p = parse(&body);
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(p.text, body.trim_start_matches("#reply\n").trim_end());
        assert_eq!(p.signature, None);
        let many = format!(
            "#reply\nDear Ms Smith,\n\nThanks\n{}",
            "a line\n".repeat(11)
        );
        assert_eq!(parse(&many).signature, None);
    }

    // ---- dates --------------------------------------------------------------

    #[test]
    fn dates_as_people_write_them() {
        let cases = [
            ("2026-12-20", Some("2026-12-20")),
            ("2026-1-5", Some("2026-01-05")),
            ("20/12/2026", Some("2026-12-20")),
            ("5/1/2027", Some("2027-01-05")),
            ("20-12-2026", Some("2026-12-20")),
            ("20.12.2026", Some("2026-12-20")),
            ("20 December 2026", Some("2026-12-20")),
            ("20 december 2026", Some("2026-12-20")),
            ("20 Dec 2026", Some("2026-12-20")),
            ("20 Dec. 2026", Some("2026-12-20")),
            ("20th December, 2026", Some("2026-12-20")),
            ("1st Feb 2027", Some("2027-02-01")),
            ("Sunday 20 December 2026", Some("2026-12-20")),
            ("Sun, 20 Dec 2026", Some("2026-12-20")),
            ("29/02/2028", Some("2028-02-29")),
            ("29/02/2027", None),
            ("00/12/2026", None),
            ("20/13/2026", None),
            ("December 20, 2026", None),
            ("2026/12/20", None),
            ("20 December", None),
            ("tomorrow", None),
        ];
        for (written, expected) in cases {
            let got = match read_date(written) {
                DateRead::Date(date) => Some(date),
                _ => None,
            };
            assert_eq!(got, expected.map(d), "{written}");
        }
    }

    #[test]
    fn month_and_weekday_names() {
        assert_eq!(month_number("May"), Some(5));
        assert_eq!(month_number("sep"), Some(9));
        assert_eq!(month_number("Sept"), Some(9));
        assert_eq!(month_number("ju"), None);
        assert_eq!(month_number("decem"), None);
        assert_eq!(weekday("thu"), Some(Weekday::Thu));
        assert_eq!(weekday("Thursday"), Some(Weekday::Thu));
        assert_eq!(weekday("thurs"), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("resolve", "resolve"), 0);
        assert_eq!(edit_distance("resolved", "resolve"), 1);
        assert_eq!(edit_distance("rely", "reply"), 1);
        assert_eq!(edit_distance("", "note"), 4);
        assert_eq!(edit_distance("ext", "extend"), 3);
    }

    // ---- help -----------------------------------------------------------------

    #[test]
    fn help_names_every_command_and_outcome_and_is_no_command_itself() {
        for name in NAMES {
            assert!(HELP.contains(&format!("#{name}")), "{name}");
        }
        for outcome in Outcome::ALL {
            assert!(HELP.contains(outcome.as_str()), "{outcome}");
        }
        // Quoted back unstripped below a note, it changes nothing.
        let p = parse(&format!("Rang her.\n\n{HELP}"));
        assert!(p.is_ok(), "{:?}", p.problems);
        assert!(p.commands.is_empty());
        assert!(HELP.lines().all(|l| l.chars().count() <= 80));
    }

    // ---- properties -------------------------------------------------------------

    /// Reply-like bodies: command lines good and bad, text, quotes and
    /// signatures, in any order.
    fn replyish() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9 ,.:/#-]{0,30}",
            "[#/](reply|note|formal|resume|assign|hold|extend|resolve|external|REPLY|frob)( [a-zA-Z0-9 /.-]{0,20})?",
            Just("#hold sick until 20/12/2026".to_string()),
            Just("#extend 5 witness".to_string()),
            Just("#extend 31/02/2027 x".to_string()),
            Just("#resolve partly upheld".to_string()),
            Just("#resolve".to_string()),
            Just("until".to_string()),
            Just("> quoted".to_string()),
            Just("On 23/11/2026 10:00, OPP <complaints@opp.example> wrote:".to_string()),
            Just("From: OPP".to_string()),
            Just("Sent: 23 November 2026 10:00".to_string()),
            Just("-- ".to_string()),
            Just("Kind regards,".to_string()),
            Just("Jane".to_string()),
        ];
        (
            prop::collection::vec(line, 0..20),
            prop_oneof![Just("\n"), Just("\r\n")],
        )
            .prop_map(|(lines, eol)| lines.join(eol))
    }

    /// A well-formed command line and what it parses to.
    fn valid_command() -> impl Strategy<Value = (String, Command)> {
        let word = "[A-Za-z][a-z]{0,8}";
        let words = prop::collection::vec(word, 1..4).prop_map(|w| w.join(" "));
        let date = (0i64..700).prop_map(|n| today() + chrono::Duration::days(n + 1));
        prop_oneof![
            words
                .clone()
                .prop_map(|w| (format!("#assign {w}"), Command::Assign { department: w })),
            words
                .clone()
                .prop_map(|w| (format!("/external {w}"), Command::External { body: w })),
            (1u32..=365, words.clone()).prop_map(|(n, w)| {
                let reason = format!("x {w}");
                (
                    format!("#Extend {n} {reason}"),
                    extend(ExtendTo::WorkingDays(n), &reason),
                )
            }),
            (date.clone(), words.clone(), 0usize..3).prop_map(|(dt, w, style)| {
                let written = match style {
                    0 => dt.format("%Y-%m-%d").to_string(),
                    1 => dt.format("%d/%m/%Y").to_string(),
                    _ => dt.format("%A %-d %B %Y").to_string(),
                };
                (
                    format!("#extend {written} {w}"),
                    extend(ExtendTo::Date(dt), &w),
                )
            }),
            (date, words).prop_map(|(dt, w)| {
                (
                    format!("#hold {w} until {}", dt.format("%-d %b %Y")),
                    hold(&w, Some(dt.format("%Y-%m-%d").to_string().as_str())),
                )
            }),
            prop::sample::select(Outcome::ALL.to_vec()).prop_map(|o| {
                (
                    format!("#RESOLVE {}", o.as_str().replace('-', " ")),
                    Command::Resolve { outcome: o },
                )
            }),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_anything(body in any::<String>()) {
            let _ = parse(&body);
        }

        #[test]
        fn clean_replies_keep_the_rules(body in replyish()) {
            let p = parse(&body);
            // Each problem names a line of the input.
            for problem in &p.problems {
                prop_assert!(body.contains(&problem.line), "{problem:?}");
            }
            if p.is_ok() {
                let has = |name: &str| p.commands.iter().filter(|c| c.name() == name).count();
                for name in NAMES {
                    prop_assert!(has(&format!("#{name}")) <= 1, "{name} twice: {body:?}");
                }
                // #reply, #resolve and #note each say what the text is for.
                prop_assert!(has("#reply") + has("#resolve") + has("#note") <= 1, "{body:?}");
                prop_assert!(has("#hold") + has("#resume") <= 1);
                if p.text.is_empty() {
                    prop_assert_eq!(has("#reply") + has("#resolve") + has("#note"), 0);
                }
            }
            prop_assert_eq!(p.text.trim_end(), p.text.as_str());
        }

        #[test]
        fn well_formed_commands_read_back((line, command) in valid_command(), text in "[A-Z][a-z ]{0,30}") {
            let p = parse(&format!("{line}\n\n{text}"));
            prop_assert!(p.is_ok(), "{line:?}: {:?}", p.problems);
            prop_assert_eq!(p.commands, vec![command]);
            prop_assert_eq!(p.text, text.trim_end());
        }
    }

    #[test]
    fn internal_text_is_caught_in_a_response() {
        let note = "The assessor admits the form was lost in the move";
        assert!(internal_text_in("Dear Fay,\nWe are sorry.", &[note]).is_none());
        assert!(
            internal_text_in(&format!("Dear Fay,\n{}", note.replace(' ', "\n")), &[note]).is_some()
        );
        // Short notes ("ok", "called her") are too common to tell.
        assert!(internal_text_in("Dear Fay, ok.", &["ok"]).is_none());
        let quoted_help = format!("Dear Fay,\n\n{HELP}");
        assert!(internal_text_in(&quoted_help, &[]).is_some());
    }
}
