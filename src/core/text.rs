//! Reading the words of a mail: the new text of a reply without its quoted
//! history, the sender's signature, the UK phone number in it, and dates
//! written the way our letters write them.
//!
//! Mail clients do not mark what is new in a reply, so this is heuristics over
//! the lines people's clients actually write (see the tests and the corpus
//! cases in `tests/it/text.rs`):
//!
//! - `>` quoting (RFC 3676 section 4.5), with the attribution line before it:
//!   "On <date>, <name> wrote:", "Le ... a écrit :", "Am ... schrieb ...:",
//!   Apple Mail's "On 23 Nov 2026, at 10:00, Name <a@b> wrote:", Thunderbird's
//!   "On 23/11/2026 10:00, Name wrote:", wrapped over two lines or not.
//!   Only the quoted lines go: text between quote blocks (interleaved or
//!   bottom-posted replies) is the sender's and stays.
//! - Outlook-style history, which is not `>`-quoted, so everything from its
//!   start to the end goes: "-----Original Message-----" (and its
//!   translations), an underscore rule followed by a `From:` header block, or
//!   the header block alone (`From:`/`Sent:`/`To:`/`Subject:`, German
//!   `Von:`/`Gesendet:`, French `De :`/`Envoyé :`...), and an attribution
//!   line with no `>` lines after it (HTML mail turned into text).
//! - A signature after the "-- " delimiter (RFC 3676 section 4.3) and the
//!   footers phones add ("Sent from my iPhone", "Get Outlook for iOS").
//!
//! Forwarded mail is never stripped. A complainant who forwards the exchange
//! they are complaining about, or a member of staff who forwards a complaint
//! to the complaints address, means the forwarded text to be read: it is the
//! evidence, and cutting it would leave "see below" with nothing below. So a
//! forward marker ("Begin forwarded message:", "---------- Forwarded message
//! ---------", an Outlook header block whose Subject starts "FW:") ends the
//! stripping and everything after it is kept verbatim. Callers that know a
//! mail is a forward from its own Subject ([`is_forward_subject`]) should not
//! strip it at all: Outlook writes "-----Original Message-----" above a
//! forward as well as above a reply.
//!
//! The stripping is meant for replies (mail with In-Reply-To or References).
//! A first complaint may paste an old email with its From:/Sent: lines as
//! evidence, so callers show a first message whole.
//!
//! Invariants, checked by property tests:
//! - every line of [`strip_quoted`]'s output is a line of its input, in the
//!   input's order: nothing is invented, reworded or reordered;
//! - nothing here panics on any input, and nothing reads a file or the clock.
//!
//! The raw mail is always stored as well, so a wrong guess here loses nothing.

use chrono::NaiveDate;
use regex::Regex;
use std::sync::LazyLock;

/// Compiles one of this module's fixed patterns; they are literals checked by
/// the tests, so failing here is a programming error.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("text.rs pattern {pattern:?}: {e}"))
}

/// An attribution whose language we know: "On ... wrote:", "Le ... a écrit
/// :", "Am ... schrieb ...:", "Name schrieb am ...:", and the Spanish, Dutch
/// and Italian forms. Yahoo writes "--- On ... wrote:". Matched against one
/// line or two lines joined with a space (Gmail wraps long ones).
static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^
        (?:-+\s*)?
        (?:
            on\s.*\b(?:wrote|writes|said)
          | le\s.*\b(?:a\s+)?écrit
          | am\s.*\bschrieb\b.*
          | el\s.*\bescribió
          | op\s.*\bschreef\b.*
          | il\s.*\bha\s+scritto
          | [^:]{1,80}?\bschrieb\s+am\s.*
        )
        \s*:\s*$")
});

/// A line ending with a "wrote" verb in some language, for attributions that
/// do not start with a known word: "Jane <jane@example.net> writes:", Android's
/// "02.04.2012 14:20 пользователь ... написал:". Only trusted right above
/// `>` lines.
static WROTE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)\b(?:
        wrote|writes|schrieb|écrit|escribió|schreef|scritto|skrev|kirjoitti|napisał|написал|написала
    )\b.*:\s*$")
});

/// Something that looks like a date or a time, which attributions carry and
/// prose rarely ends a line with.
static DATE_OR_TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        \b[0-9]{1,4}[./-][0-9]{1,2}[./-][0-9]{2,4}\b   # 23/11/2026, 2026-11-23
      | \b[0-9]{1,2}:[0-9]{2}\b                         # 10:00
      | \b(?:19|20)[0-9]{2}\b                          # 2026
    ")
});

/// Outlook's, AOL's, Yahoo's and Zimbra's separator above reply history, in
/// the languages UK organisations' correspondents use most.
static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^\s*-{2,}\s*
        (?:original\s+message|original\s+nachricht|ursprüngliche\s+nachricht|message\s+d'origine
          |mensaje\s+original|messaggio\s+originale|oorspronkelijk\s+bericht|originalmeddelande
          |opprinnelig\s+melding)
        \s*-{2,}\s*$")
});

/// Forward markers: Apple Mail, Gmail, Thunderbird and their translations.
static FORWARD_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^\s*(?:
        begin\s+forwarded\s+message\s*:
      | -{2,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht|message\s+transf[ée]r[ée]
          |mensaje\s+reenviado|doorgestuurd\s+bericht|messaggio\s+inoltrato)\s*-{2,}
      | début\s+du\s+message\s+réexpédié\s*:
      | anfang\s+der\s+weitergeleiteten\s+nachricht\s*:
    )\s*$")
});

/// The rule Outlook draws above a reply's header block (32 underscores).
static UNDERSCORES: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*_{10,}\s*$"));

/// The first line of a quoted header block: `From:` and its translations,
/// with the `*From:*` bold that HTML-to-text conversion leaves.
static FROM_HEADER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^\s*\*?(?:from|von|de|van|da|från|fra)\s*:\*?\s*\S"));

/// Any other line of a quoted header block.
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^\s*\*?(?:
        sent|date|to|cc|bcc|subject|reply-to
      | gesendet|datum|an|betreff|kopie
      | envoyé|à|objet
      | enviado|para|asunto|fecha
      | verzonden|aan|onderwerp
      | inviato|a|oggetto|data
    )\s*:")
});

/// The header that says when: a block of header lines with this and a
/// `From:` is history, not a sentence that happens to start with "From:".
/// A clock time, which every client's attribution carries and prose rarely
/// does.
static TIME: LazyLock<Regex> = LazyLock::new(|| re(r"\b[0-9]{1,2}:[0-9]{2}\b"));

static SENT_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^\s*\*?
        (?:sent|date|gesendet|datum|envoyé|enviado|fecha|verzonden|inviato|data)\s*:")
});

/// Outlook's header block squashed onto one line: "From: X Sent: Y To: Z".
static FROM_SENT_ONE_LINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^\s*\*?(?:from|von|de)\s*:.*\s\*?(?:sent|gesendet|envoyé|date)\s*:"));

/// The Subject line of a quoted header block, to tell a forward from a reply.
static SUBJECT_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^\s*\*?(?:subject|betreff|objet|asunto|onderwerp|oggetto)\s*:\*?\s*(.*)$")
});

/// Subject prefixes that mean "forwarded" (English, German "WG:" and GMX's
/// "W.:", French, Spanish).
static FORWARD_SUBJECT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^\s*\[?\s*(?:fwd?|wg|w\.|tr|rv)\s*:"));

/// Footers mobile and webmail clients append below the sender's text.
static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)^\s*(?:
        sent\s+from\s+my\s+\S.{0,40}
      | sent\s+from\s+(?:mail|outlook)(?:\s*<[^>]*>)?\s+for\s+(?:windows|ios|android|mac)
          (?:\s+1[01])?
      | get\s+outlook\s+for\s+(?:ios|android)
      | sent\s+from\s+(?:yahoo\s+mail|outlook|gmail|proton\s*mail|aol\s+mail|samsung).{0,40}
      | von\s+meinem\s+\S.{0,30}\s+gesendet
      | envoyé\s+de\s+mon\s+\S.{0,30}
    )\s*(?:<https?://[^>\s]*>)?\s*$")
});

/// A sign-off that starts a signature block, optionally with a name on the
/// same line ("Thanks, Jane"). The phrase is case-insensitive; the name must
/// be capitalised, so "Thanks for your help." is not a sign-off.
static SIGN_OFF: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)^\s*(?i:
        (?:kind(?:est)?|best|warm(?:est)?|many|with)\s+(?:regards|wishes|thanks)
      | regards | best | cheers | all\s+the\s+best | respectfully | rgds | bw | kr
      | (?:thanks|thank\s+you)(?:\s+(?:again|so\s+much|very\s+much|in\s+advance))?
      | many\s+thanks
      | yours(?:\s+(?:sincerely|faithfully|truly))? | (?:sincerely|faithfully)(?:\s+yours)?
      | mit\s+freundlichen\s+grüßen | (?:viele|liebe|beste)\s+grüße | gruß | grüße
      | cordialement | bien\s+(?:à\s+vous|cordialement) | salutations\s+distinguées
    )
    [\s,.!]*
    (?:[\s,-]*\p{Lu}[\p{L}'.-]*(?:\s+\p{Lu}[\p{L}'.-]*){0,2})?
    [\s,.!]*$")
});

/// Whether a Subject says the mail is a forward ("Fwd:", "FW:", German
/// "WG:", French "TR:", Spanish "RV:"). A reply to a forward ("Re: Fwd:") is
/// a reply.
pub fn is_forward_subject(subject: &str) -> bool {
    FORWARD_SUBJECT.is_match(subject)
}

/// One line of the body: its text without the line ending, and where it is.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

impl Line<'_> {
    fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// `>` quoting; some clients indent it by a space.
    fn is_quoted(&self) -> bool {
        self.text.trim_start().starts_with('>')
    }
}

/// Splits on LF, CRLF and a lone CR (old Mac mail still turns up).
fn split_lines(body: &str) -> Vec<Line<'_>> {
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' | b'\r' => {
                // CR and LF are ASCII, so these are char boundaries.
                out.push(Line {
                    text: &body[start..i],
                    start,
                    end: i,
                });
                i += if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        out.push(Line {
            text: &body[start..],
            start,
            end: bytes.len(),
        });
    }
    out
}

/// A reply taken apart: which lines are the sender's own, which were
/// forwarded. Both hold indices into `lines`, ascending.
struct Reply<'a> {
    body: &'a str,
    lines: Vec<Line<'a>>,
    /// The sender's own text, quotes removed, signature and footers kept,
    /// without leading or trailing blank lines.
    own: Vec<usize>,
    /// The forwarded part, from its marker on, verbatim; empty if none.
    forwarded: Vec<usize>,
}

impl<'a> Reply<'a> {
    fn parse(body: &'a str) -> Reply<'a> {
        let lines = split_lines(body);
        let n = lines.len();
        let mut own: Vec<usize> = Vec::new();
        let mut forwarded = Vec::new();
        // A blank line seen next to removed text, to keep one between the
        // paragraphs on either side of it.
        let mut gap: Option<usize> = None;
        let mut i = 0;
        while i < n {
            if is_forward_start(&lines, i) {
                forwarded = (i..n).collect();
                break;
            }
            if is_history_start(&lines, i) {
                break;
            }
            if lines[i].is_quoted() {
                let first = attribution_start(&lines, i);
                while own.last().is_some_and(|&k| k >= first) {
                    own.pop();
                }
                while let Some(&k) = own.last() {
                    if !lines[k].is_blank() {
                        break;
                    }
                    gap = gap.or(Some(k));
                    own.pop();
                }
                // The quote block runs on over blank lines between `>` lines.
                while i < n {
                    if lines[i].is_quoted() {
                        i += 1;
                        continue;
                    }
                    let next = (i..n).find(|&k| !lines[k].is_blank());
                    match next {
                        Some(k) if lines[k].is_quoted() => i = k,
                        _ => break,
                    }
                }
                while i < n && lines[i].is_blank() {
                    gap = gap.or(Some(i));
                    i += 1;
                }
                continue;
            }
            if lines[i].is_blank() && own.is_empty() {
                i += 1;
                continue;
            }
            if !lines[i].is_blank() {
                if let Some(g) = gap.take() {
                    if !own.is_empty() {
                        own.push(g);
                    }
                }
            }
            own.push(i);
            i += 1;
        }
        trim_blank(&lines, &mut own);
        trim_blank(&lines, &mut forwarded);
        Reply {
            body,
            lines,
            own,
            forwarded,
        }
    }

    /// The sender's own lines without the mobile footers at the end.
    fn own_without_footers(&self) -> Vec<usize> {
        let mut own = self.own.clone();
        strip_footers(&self.lines, &mut own);
        own
    }

    /// Position in `own` of the "-- " signature delimiter, if any.
    fn delimiter(&self, own: &[usize]) -> Option<usize> {
        own.iter().enumerate().position(|(p, &k)| {
            let t = self.lines[k].text;
            // "-- " is the standard; clients that trim trailing spaces leave
            // "--", trusted only when what follows is signature-sized.
            t == "-- " || (t.trim_end() == "--" && own.len() - p <= 15)
        })
    }

    /// The text spanning `lines[first..=last]` of the body.
    fn span(&self, first: usize, last: usize) -> &'a str {
        &self.body[self.lines[first].start..self.lines[last].end]
    }
}

fn trim_blank(lines: &[Line], idx: &mut Vec<usize>) {
    while idx.last().is_some_and(|&k| lines[k].is_blank()) {
        idx.pop();
    }
    let lead = idx.iter().take_while(|&&k| lines[k].is_blank()).count();
    idx.drain(..lead);
}

fn strip_footers(lines: &[Line], idx: &mut Vec<usize>) {
    while idx
        .last()
        .is_some_and(|&k| lines[k].is_blank() || FOOTER.is_match(lines[k].text))
    {
        idx.pop();
    }
}

/// Lines `i` and `i + 1` joined with a space, when `i + 1` is a non-blank
/// line: how a wrapped attribution reads.
fn joined(lines: &[Line], i: usize) -> Option<String> {
    let next = lines.get(i + 1).filter(|l| !l.is_blank())?;
    Some(format!("{} {}", lines[i].text.trim(), next.text.trim()))
}

/// If an attribution in a known language starts at line `i`, how many lines
/// it takes (1, or 2 when wrapped).
fn attribution_at(lines: &[Line], i: usize) -> Option<usize> {
    if ATTRIBUTION.is_match(lines[i].text.trim()) {
        return Some(1);
    }
    joined(lines, i)
        .filter(|j| ATTRIBUTION.is_match(j))
        .map(|_| 2)
}

/// The first line of the attribution above the quote block starting at `q`
/// (`q` itself when there is none). Up to two blank lines may separate them.
fn attribution_start(lines: &[Line], q: usize) -> usize {
    let mut j = q;
    let mut blanks = 0;
    loop {
        if j == 0 {
            return q;
        }
        j -= 1;
        if !lines[j].is_blank() {
            break;
        }
        blanks += 1;
        if blanks > 2 {
            return q;
        }
    }
    let line = lines[j].text.trim();
    let prev = (j > 0 && !lines[j - 1].is_blank()).then(|| lines[j - 1].text.trim());
    if ATTRIBUTION.is_match(line) {
        return j;
    }
    if let Some(prev) = prev {
        if ATTRIBUTION.is_match(&format!("{prev} {line}")) {
            return j - 1;
        }
    }
    if WROTE.is_match(line) {
        // The first half of a wrapped attribution carries the date or the
        // address and does not end a sentence; "Thanks, Jane" above it does
        // not qualify.
        let wrapped = prev.is_some_and(|p| {
            !p.ends_with(['.', '!', '?', ',']) && (p.contains('@') || DATE_OR_TIME.is_match(p))
        });
        return if wrapped { j - 1 } else { j };
    }
    q
}

/// Whether quoted history that is not `>`-quoted starts at line `i`: the rest
/// of the body is then history.
fn is_history_start(lines: &[Line], i: usize) -> bool {
    let text = lines[i].text;
    if ORIGINAL_MESSAGE.is_match(text) || FROM_SENT_ONE_LINE.is_match(text) {
        return true;
    }
    if UNDERSCORES.is_match(text) {
        return next_non_blank(lines, i + 1, 2)
            .is_some_and(|k| FROM_HEADER.is_match(lines[k].text));
    }
    if is_header_block(lines, i) {
        return true;
    }
    // An attribution with no `>` lines after it: HTML mail turned into text
    // loses the quoting. Clients always put a time or an address in it,
    // prose rarely does, so "On Monday my manager wrote:" in a complaint
    // stays; a wrapped one must also stand as its own paragraph.
    if let Some(len) = attribution_at(lines, i) {
        let head = lines[i..i + len]
            .iter()
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join(" ");
        let quoted_next = next_non_blank(lines, i + len, 2).is_some_and(|k| lines[k].is_quoted());
        let own_paragraph =
            (i == 0 || lines[i - 1].is_blank()) && lines.get(i + len).is_none_or(|l| l.is_blank());
        return !quoted_next
            && (len == 1 || own_paragraph)
            && (head.contains('@') || TIME.is_match(&head));
    }
    false
}

/// Whether a forwarded message starts at line `i`.
fn is_forward_start(lines: &[Line], i: usize) -> bool {
    let text = lines[i].text;
    if FORWARD_MARKER.is_match(text) {
        return true;
    }
    // Outlook writes the same separator and header block above a forward as
    // above a reply; only the quoted Subject tells them apart.
    let block_start = if ORIGINAL_MESSAGE.is_match(text) || UNDERSCORES.is_match(text) {
        match next_non_blank(lines, i + 1, 2) {
            Some(k) if FROM_HEADER.is_match(lines[k].text) => k,
            _ => return false,
        }
    } else if is_header_block(lines, i) {
        i
    } else {
        return false;
    };
    lines[block_start..]
        .iter()
        .take(8)
        .take_while(|l| !l.is_blank())
        .find_map(|l| SUBJECT_HEADER.captures(l.text))
        .and_then(|c| c.get(1))
        .is_some_and(|s| is_forward_subject(s.as_str()))
}

/// Whether a block of quoted headers starts at line `i`: three or more
/// header lines in a row, among them who sent it and when. Outlook starts
/// with `From:`, GMX with `Gesendet:`.
fn is_header_block(lines: &[Line], i: usize) -> bool {
    if FROM_SENT_ONE_LINE.is_match(lines[i].text) {
        return true;
    }
    let block: Vec<&str> = lines[i..]
        .iter()
        .take(7)
        .map(|l| l.text)
        .take_while(|t| FROM_HEADER.is_match(t) || HEADER_LINE.is_match(t))
        .collect();
    let starts = FROM_HEADER.is_match(lines[i].text) || SENT_HEADER.is_match(lines[i].text);
    starts
        && block.len() >= 3
        && block.iter().any(|t| FROM_HEADER.is_match(t))
        && block.iter().any(|t| SENT_HEADER.is_match(t))
}

/// The first non-blank line at or after `from`, skipping at most `max_blanks`.
fn next_non_blank(lines: &[Line], from: usize, max_blanks: usize) -> Option<usize> {
    (from..lines.len())
        .take(max_blanks + 1)
        .find(|&k| !lines[k].is_blank())
}

/// The new text of a reply: the sender's own words with the quoted history,
/// the "-- " signature and mobile footers removed, for display and for
/// reading staff commands.
///
/// Forwarded mail below the sender's text is kept (see the module docs).
/// Returns "" when the reply has no new text of its own (an empty top-post,
/// a mail that is all quote); the caller still has the raw mail.
pub fn strip_quoted(body: &str) -> String {
    let reply = Reply::parse(body);
    let mut own = reply.own_without_footers();
    if let Some(d) = reply.delimiter(&own) {
        own.truncate(d);
    }
    strip_footers(&reply.lines, &mut own);
    let mut out: Vec<&str> = own.iter().map(|&k| reply.lines[k].text).collect();
    if let (Some(&last), Some(&first)) = (own.last(), reply.forwarded.first()) {
        // One of the blank lines between them, if the sender left any.
        if let Some(b) = (last + 1..first).find(|&k| reply.lines[k].is_blank()) {
            out.push(reply.lines[b].text);
        }
    }
    out.extend(reply.forwarded.iter().map(|&k| reply.lines[k].text));
    out.join("\n")
}

/// The sender's signature block, as it appears in the body: the lines after
/// the "-- " delimiter, or else the sign-off ("Kind regards", "Thanks, Jane",
/// "Mit freundlichen Grüßen"...) near the end of the sender's own text and
/// the lines after it.
///
/// Quoted history and forwarded mail are not the sender's and are never
/// searched; mobile footers are left out. A sign-off on the first line of
/// the text ("Thanks for the letter...") is not a signature.
pub fn signature(body: &str) -> Option<&str> {
    let reply = Reply::parse(body);
    let own = reply.own_without_footers();
    if own.is_empty() {
        return None;
    }
    if let Some(d) = reply.delimiter(&own) {
        let mut sig: Vec<usize> = contiguous(&own[d + 1..]);
        trim_blank(&reply.lines, &mut sig);
        if let (Some(&a), Some(&b)) = (sig.first(), sig.last()) {
            return Some(reply.span(a, b));
        }
    }
    // Sign-offs sit near the end; 30 lines leaves room for a company
    // signature with an address and a disclaimer.
    let window = own.len().saturating_sub(30).max(1);
    let at = (window..own.len())
        .rev()
        .find(|&p| SIGN_OFF.is_match(reply.lines[own[p]].text))?;
    let sig = contiguous(&own[at..]);
    let (&a, &b) = (sig.first()?, sig.last()?);
    Some(reply.span(a, b))
}

/// The leading run of `idx` whose lines follow one another in the body, so
/// that a span of them never takes in removed quoted text.
fn contiguous(idx: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for &k in idx {
        match out.last() {
            Some(&p) if k != p + 1 => break,
            _ => out.push(k),
        }
    }
    out
}

/// The sender's phone number: the first UK number in their signature block,
/// else in the last lines of their own text. Numbers in quoted history (ours,
/// usually) and in forwarded mail are never taken.
pub fn signature_phone(body: &str) -> Option<String> {
    if let Some(p) = signature(body).and_then(|s| uk_phone_numbers(s).into_iter().next()) {
        return Some(p);
    }
    let reply = Reply::parse(body);
    let own = reply.own_without_footers();
    let mut tail: Vec<&str> = own
        .iter()
        .rev()
        .map(|&k| reply.lines[k].text)
        .filter(|t| !t.trim().is_empty())
        .take(5)
        .collect();
    tail.reverse();
    uk_phone_numbers(&tail.join("\n")).into_iter().next()
}

/// A run of digit groups with the separators people put between them:
/// spaces, dots, dashes (and the en dash word processors turn them into),
/// brackets. Never a newline or a slash (dates).
static DIGIT_RUN: LazyLock<Regex> =
    LazyLock::new(|| re(r"[+(]?[0-9]+(?:[ \t.()\x{2013}-]{1,3}[0-9]+)*"));

/// One group of digits in a run.
#[derive(Debug, Clone, Copy)]
struct Group<'a> {
    digits: &'a str,
    /// The separator before it contains a space: a phone number can start
    /// or end there.
    spaced_before: bool,
}

/// Every UK phone number in `text`, in the order written, without repeats,
/// in national form grouped the usual way: "07700 900123", "020 7946 0958",
/// "01254 123456", "0800 123 4567". "+44 (0)7700 900123" and "0044 7700 900
/// 123" become "07700 900123".
///
/// A number is 10 or 11 digits in national form, starting 01, 02, 03, 05,
/// 07, 08 or 09. Dates (23/11/2026, 2026-11-23), times, case references
/// (OPP-2026-0042), postcodes and long order or account numbers are not
/// numbers: a run of digits counts only when it splits exactly into phone
/// numbers, and only when it is not glued to a word or another number.
pub fn uk_phone_numbers(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in DIGIT_RUN.find_iter(text) {
        for number in numbers_in_run(text, m.start(), m.end()) {
            if !out.contains(&number) {
                out.push(number);
            }
        }
    }
    out
}

fn numbers_in_run(text: &str, start: usize, end: usize) -> Vec<String> {
    let run = &text[start..end];
    let plus = run.starts_with('+');
    let mut groups: Vec<Group> = Vec::new();
    let mut rest = run;
    let mut spaced = true;
    while !rest.is_empty() {
        let sep_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if sep_len > 0 {
            spaced = rest[..sep_len].contains([' ', '\t']);
        }
        rest = &rest[sep_len..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        groups.push(Group {
            digits: &rest[..len],
            spaced_before: groups.is_empty() || spaced,
        });
        rest = &rest[len..];
        spaced = false;
    }
    let mut plus = plus;
    // A group glued to the word or number before the run ("ID12345",
    // "2026-0042") or after it ("123456/7", "10am") is not part of a phone
    // number; drop it when a space separates it from the rest, else the whole
    // run is something else.
    if glued_before(text, start) {
        if groups.len() > 1 && groups[1].spaced_before {
            groups.remove(0);
            plus = false;
        } else {
            return Vec::new();
        }
    }
    if glued_after(text, end) {
        match groups.last() {
            Some(last) if groups.len() > 1 && last.spaced_before => {
                groups.pop();
            }
            _ => return Vec::new(),
        }
    }
    partition(&groups, plus).unwrap_or_default()
}

/// Whether the character before `at` joins the run to a preceding token:
/// a letter or digit, or a dash, slash or dot right after a digit or (for
/// dash and slash) a letter. "Tel.01254" is still a number.
fn glued_before(text: &str, at: usize) -> bool {
    let mut before = text[..at].chars().rev();
    match before.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some(c @ ('-' | '/' | '.')) => before
            .next()
            .is_some_and(|p| p.is_ascii_digit() || (c != '.' && p.is_alphanumeric())),
        _ => false,
    }
}

/// Whether the character after `at` joins the run to a following token.
fn glued_after(text: &str, at: usize) -> bool {
    let mut after = text[at..].chars();
    match after.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some('-' | '/' | '.' | ':') => after.next().is_some_and(|n| n.is_alphanumeric()),
        _ => false,
    }
}

/// Splits the whole run into UK numbers, each made of whole groups and
/// starting after a space; None if it cannot be done. Longer numbers are
/// preferred (11 digits, then 10). Dynamic programming from the end, so a
/// long run of short groups costs linear time.
fn partition(groups: &[Group], plus: bool) -> Option<Vec<String>> {
    let n = groups.len();
    // best[k]: the number starting at group k and the group after it, when
    // groups[k..] splits into numbers.
    let mut best: Vec<Option<(String, usize)>> = vec![None; n + 1];
    let mut ok = vec![false; n + 1];
    ok[n] = true;
    for k in (0..n).rev() {
        if !groups[k].spaced_before {
            continue;
        }
        let mut digits = String::new();
        let mut found: Option<(String, usize)> = None;
        for end in k + 1..=n {
            digits.push_str(groups[end - 1].digits);
            if digits.len() > 16 {
                break;
            }
            if !ok[end] || !(end == n || groups[end].spaced_before) {
                continue;
            }
            if let Some(national) = national(&digits, plus && k == 0) {
                // Later ends are longer numbers: keep the longest.
                found = Some((national, end));
            }
        }
        if let Some(f) = found {
            best[k] = Some(f);
            ok[k] = true;
        }
    }
    let mut out = Vec::new();
    let mut k = 0;
    while k < n {
        let (number, next) = best[k].clone()?;
        out.push(number);
        k = next;
    }
    Some(out)
}

/// The national form of the digits written, formatted, if they are a UK
/// number: "+44" (`plus`) or "0044" replaced by 0, with the "(0)" people put
/// after it dropped.
fn national(digits: &str, plus: bool) -> Option<String> {
    let international = if plus {
        Some(digits.strip_prefix("44")?)
    } else {
        digits.strip_prefix("0044")
    };
    let national = match international {
        Some(rest) => format!("0{}", rest.strip_prefix('0').unwrap_or(rest)),
        None => digits.to_string(),
    };
    format_national(&national)
}

/// Checks the length and prefix of a national number and groups it as
/// Ofcom's numbering plan does.
fn format_national(d: &str) -> Option<String> {
    let b = d.as_bytes();
    if !(b.len() == 10 || b.len() == 11) || b[0] != b'0' || !d.is_ascii() {
        return None;
    }
    let split = |cuts: &[usize]| {
        let mut parts = Vec::new();
        let mut from = 0;
        for &c in cuts {
            parts.push(&d[from..c]);
            from = c;
        }
        parts.push(&d[from..]);
        Some(parts.join(" "))
    };
    match (b.len(), b[1]) {
        (11, b'2') | (11, b'5') => split(&[3, 7]),
        // 0113, 0114... and 0121, 0131...: four-digit area codes.
        (11, b'1') if b[2] == b'1' || b[3] == b'1' => split(&[4, 7]),
        (11, b'1') | (11, b'7') => split(&[5]),
        (11, b'3') | (11, b'8') | (11, b'9') => split(&[4, 7]),
        (10, b'1') => split(&[5]),
        (10, b'8') => split(&[4]),
        _ => None,
    }
}

/// A date as our letters write it: "Friday 18 December 2026".
pub fn uk_long_date(date: NaiveDate) -> String {
    date.format("%A %-d %B %Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- strip_quoted: `>` quoting and attributions --------------------

    #[test]
    fn gmail_attribution_and_quote_go() {
        // talon standard_replies/gmail.eml, text part.
        let body =
            "Hello\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:\n\n> Hi\n\n";
        assert_eq!(strip_quoted(body), "Hello");
    }

    #[test]
    fn gmail_attribution_wrapped_over_two_lines_goes() {
        let body = "Thank you, I will wait for the call.\n\n\
            On Mon, 23 Nov 2026 at 10:00, OPP Training Complaints <complaints@opp.example>\n\
            wrote:\n\n> Dear Ms Smith,\n> We have received your complaint.\n";
        assert_eq!(strip_quoted(body), "Thank you, I will wait for the call.");
    }

    #[test]
    fn french_and_german_attributions_go() {
        let fr = "Merci.\n\nLe lun. 23 nov. 2026 à 10:00, Jean Dupont <jean@example.fr> a écrit :\n> Bonjour\n";
        assert_eq!(strip_quoted(fr), "Merci.");
        let fr_wrapped = "Merci.\n\nLe lun. 23 nov. 2026 à 10:00, Service Réclamations <reclamations@example.fr> a\nécrit :\n\n> Bonjour\n";
        assert_eq!(strip_quoted(fr_wrapped), "Merci.");
        let de = "Danke.\n\nAm 23.11.2026 um 10:00 schrieb Max Muster <max@example.de>:\n> Hallo\n";
        assert_eq!(strip_quoted(de), "Danke.");
        // Thunderbird in German puts the comma before "schrieb" (zammad mail005).
        let de_tb = "Am 07.05.2012 08:10, schrieb Martin Edenhofer via Znuny Team:\n> Hallo Marc,\nHallo Martin,\n\nGrüße aus Bonn\n";
        assert_eq!(strip_quoted(de_tb), "Hallo Martin,\n\nGrüße aus Bonn");
    }

    #[test]
    fn apple_mail_attribution_inside_or_above_the_quote_goes() {
        // talon standard_replies/apple_mail.eml and apple_mail_2.eml.
        let above = "Hello\n\nOn Apr 3, 2012, at 4:19 PM, bob wrote:\n\n> Hi\n";
        assert_eq!(strip_quoted(above), "Hello");
        let inside = "Hello\n> On 22 Aug 2015, at 19:21, Adam Renberg <tgwizard@gmail.com> wrote:\n>\n> Hi there!\n\n";
        assert_eq!(strip_quoted(inside), "Hello");
        let uk = "Yes, Tuesday is fine.\n\nOn 23 Nov 2026, at 10:00, Jane Smith <jane@opp.example> wrote:\n\n> Could we meet?\n";
        assert_eq!(strip_quoted(uk), "Yes, Tuesday is fine.");
    }

    #[test]
    fn thunderbird_top_and_bottom_posting() {
        let top = "I have attached the letter.\n\nOn 23/11/2026 10:00, Jane Smith wrote:\n> Please send the letter.\n";
        assert_eq!(strip_quoted(top), "I have attached the letter.");
        // talon standard_replies/thunderbird.eml: the reply is below the quote.
        let bottom = "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi \nHello";
        assert_eq!(strip_quoted(bottom), "Hello");
    }

    #[test]
    fn interleaved_answers_stay_and_quotes_between_them_go() {
        let body = "On Tue, 17 Nov 2009 14:00:54 -0500, Lars <lars@example.edu> wrote:\n\
            > first question\n> more of it\n\nFirst answer.\n\n> second question\n>\n> still quoted\n\n\n\
            Second answer.\n\n-Carl\n";
        assert_eq!(
            strip_quoted(body),
            "First answer.\n\nSecond answer.\n\n-Carl"
        );
    }

    #[test]
    fn android_attribution_in_another_language_wrapped_goes() {
        // talon standard_replies/android.eml, decoded.
        let body = "Hello\n02.04.2012 14:20 пользователь \"bob@xxx.mailgun.org\" <\nbob@xxx.mailgun.org> написал:\n\n> Hi\n>\n\n";
        assert_eq!(strip_quoted(body), "Hello");
    }

    #[test]
    fn a_line_above_a_quote_is_kept_unless_it_is_an_attribution() {
        let body = "Thanks, Jane\nYou said:\n> the form is online\nIt is not.\n";
        assert_eq!(strip_quoted(body), "Thanks, Jane\nYou said:\nIt is not.");
        let body = "Please look again\n\nJane Smith <jane@opp.example> writes:\n> closed\n";
        assert_eq!(strip_quoted(body), "Please look again");
    }

    #[test]
    fn an_unquoted_attribution_cuts_only_when_a_client_wrote_it() {
        // HTML mail turned into text loses the `>`.
        let html = "Fine by me.\n\nOn 23/11/2026 10:00, Jane Smith <jane@opp.example> wrote:\n\nDear Ms Jones,\nYour complaint...\n";
        assert_eq!(strip_quoted(html), "Fine by me.");
        // talon reply-quotations-share-block.eml: Yahoo's "--- On ... wrote:".
        let yahoo = "Sounds great.\n \nJoe XXX\n\n--- On Wed, 4/4/12, xxx@example.com <xxx@example.com> wrote:\n\n\nFrom: xxx@example.com <xxx@example.com>\nSubject: You've got a new booking inquiry!\n";
        assert_eq!(strip_quoted(yahoo), "Sounds great.\n \nJoe XXX");
        // chatmail allinkl-quote.eml: "Name schrieb am <date>:".
        let allinkl =
            "It's 1.0.\nHocuri schrieb am 17.03.2021 14:25 (GMT +01:00):\nWhat's the version?\n";
        assert_eq!(strip_quoted(allinkl), "It's 1.0.");
        // A complainant's own words are not an attribution.
        let prose = "On Monday my manager wrote:\n\nYou are not allowed to sit the exam.\n";
        assert_eq!(
            strip_quoted(prose),
            "On Monday my manager wrote:\n\nYou are not allowed to sit the exam."
        );
    }

    // ---- strip_quoted: Outlook-style history -----------------------------

    #[test]
    fn outlook_rule_and_header_block_cut_the_rest() {
        let body = "I can come in on Friday.\r\n\r\n________________________________\r\n\
            From: OPP Complaints <complaints@opp.example>\r\nSent: 23 November 2026 10:00\r\n\
            To: Jane Smith <jane@example.net>\r\nSubject: RE: Your complaint OPP-2026-0042\r\n\r\n\
            Dear Ms Smith,\r\n";
        assert_eq!(strip_quoted(body), "I can come in on Friday.");
    }

    #[test]
    fn outlook_header_block_without_the_rule_cuts_the_rest() {
        // talon standard_replies/outlook.eml, text part.
        let body = "Hello\n\nFrom: xxx@xxx.mailgun.org [mailto:xxx@xxx.mailgun.org]\n\
            Sent: March-09-12 4:22 PM\nTo: Dan Le\nSubject: The manager has commented on your Loop\n\nHi dan\n";
        assert_eq!(strip_quoted(body), "Hello");
        let one_line = "Noted.\n\nFrom: OPP Complaints Sent: 23 November 2026 10:00 To: Jane Subject: RE: x\nDear Jane\n";
        assert_eq!(strip_quoted(one_line), "Noted.");
        let bold = "Noted.\n\n*From:* OPP Complaints <c@opp.example>\n*Sent:* Monday, 23 November 2026 10:00\n*To:* Jane\n*Subject:* RE: x\n";
        assert_eq!(strip_quoted(bold), "Noted.");
    }

    #[test]
    fn original_message_separators_cut_the_rest() {
        // talon aol.eml and comcast.eml.
        let aol = "Hello\n\n\n\n-----Original Message-----\nFrom: bob <bob@example.com>\nSent: Mon, Apr 2, 2012 5:49 pm\nSubject: Test\n\n\nHi\n";
        assert_eq!(strip_quoted(aol), "Hello");
        let zimbra = "Hello \n\n----- Original Message -----\nFrom: bob@xxx.mailgun.org \nSubject: Test \n\nHi \n";
        assert_eq!(strip_quoted(zimbra), "Hello ");
        let de =
            "Danke\n\n-----Ursprüngliche Nachricht-----\nVon: A\nGesendet: Freitag\nBetreff: B\n";
        assert_eq!(strip_quoted(de), "Danke");
        let fr = "Merci\n\n-----Message d'origine-----\nDe : A\n";
        assert_eq!(strip_quoted(fr), "Merci");
    }

    #[test]
    fn localized_outlook_header_blocks_cut_the_rest() {
        let de = "Danke für die Rückmeldung.\n\nVon: Fritz Bauer [mailto:me@example.com]\n\
            Gesendet: Donnerstag, 3. Mai 2012 11:51\nAn: John Smith\nBetreff: Re: Anhänge\n\nHallo,\n";
        assert_eq!(strip_quoted(de), "Danke für die Rückmeldung.");
        let fr = "Merci pour votre réponse.\n\nDe : Service Réclamations <reclamations@example.fr>\n\
            Envoyé : lundi 23 novembre 2026 10:00\nÀ : Jean Dupont\nObjet : RE: Réclamation\n\nBonjour,\n";
        assert_eq!(strip_quoted(fr), "Merci pour votre réponse.");
        // GMX starts its block with the date.
        let gmx = "Gerne.\n\nGesendet: Donnerstag, 12. August 2021 um 15:52 Uhr\nVon: \"Claire\" <claire@example.org>\nAn: alice@example.org\nBetreff: Termin\n\nText\n";
        assert_eq!(strip_quoted(gmx), "Gerne.");
    }

    #[test]
    fn a_sentence_starting_from_is_not_a_header_block() {
        let body = "From: my point of view the letter was late.\nTo: be fair, it did arrive.\n";
        assert_eq!(strip_quoted(body), body.trim_end());
    }

    // ---- strip_quoted: forwards ------------------------------------------

    #[test]
    fn forwarded_mail_is_kept() {
        let apple = "Please see below, this is what I was sent.\n\nBegin forwarded message:\n\n\
            From: Tutor <tutor@opp.example>\nSubject: Exam\nDate: 20 November 2026 at 09:00:00 GMT\n\
            To: Jane <jane@example.net>\n\nYou cannot sit the exam.\n\n> earlier\n";
        assert_eq!(strip_quoted(apple), apple.trim_end());
        let gmail = "FYI\n\n---------- Forwarded message ---------\nFrom: Tutor <tutor@opp.example>\nDate: Fri, 20 Nov 2026 at 09:00\nSubject: Exam\n\nText\n";
        assert_eq!(strip_quoted(gmail), gmail.trim_end());
        let outlook =
            "See below.\n\n________________________________\nFrom: Tutor <tutor@opp.example>\n\
            Sent: 20 November 2026 09:00\nTo: Jane\nSubject: FW: Exam\n\nText\n";
        assert_eq!(strip_quoted(outlook), outlook.trim_end());
    }

    #[test]
    fn a_signature_above_a_forward_goes_and_the_forward_stays() {
        let body =
            "FYI\n-- \nJane\n\nBegin forwarded message:\n\nFrom: Tutor\n\nText\n-- \nTutor sig\n";
        assert_eq!(
            strip_quoted(body),
            "FYI\n\nBegin forwarded message:\n\nFrom: Tutor\n\nText\n-- \nTutor sig"
        );
    }

    #[test]
    fn a_quoted_forward_is_history() {
        let body = "Any news?\n\nOn 23/11/2026 10:00, Jane Smith <jane@opp.example> wrote:\n> Begin forwarded message:\n> From: Tutor\n";
        assert_eq!(strip_quoted(body), "Any news?");
    }

    #[test]
    fn forward_subjects() {
        for s in [
            "Fwd: Exam",
            "FW: Exam",
            "Fw: subject",
            "WG: Termin",
            "W.: Invoice",
            "TR: x",
            "RV: x",
            "[Fwd: x]",
        ] {
            assert!(is_forward_subject(s), "{s}");
        }
        for s in ["Re: Fwd: Exam", "Forward planning", "RE: FW: x", ""] {
            assert!(!is_forward_subject(s), "{s}");
        }
    }

    // ---- strip_quoted: signatures, footers, edges -------------------------

    #[test]
    fn signature_and_mobile_footers_go() {
        // talon sparrow.eml: "-- " signature above the quote.
        let sparrow = "Hello \n\n-- \nxxx\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)\n\n\n\
            On Tuesday, April 3, 2012 at 4:55 PM, xxx wrote:\n\n> Hello\n> \n> On Apr 3, 2012, at 4:19 PM, bob wrote:\n> \n> > Hi \n";
        assert_eq!(strip_quoted(sparrow), "Hello ");
        // talon iphone.eml.
        let iphone = "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <bob@example.com> wrote:\n\n> Hi\n";
        assert_eq!(strip_quoted(iphone), "Hello");
        for footer in [
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Get Outlook for Android",
            "Sent from Mail for Windows",
            "Sent from Mail<https://go.microsoft.com/fwlink/?LinkId=550986> for Windows 10",
            "Sent from my Samsung Galaxy smartphone.",
        ] {
            assert_eq!(
                strip_quoted(&format!("Yes.\n\n{footer}\n")),
                "Yes.",
                "{footer}"
            );
        }
        // A footer in the middle of the text is the sender's words.
        let mid = "Sent from my iPhone\nbut the reply never came.\n";
        assert_eq!(strip_quoted(mid), mid.trim_end());
    }

    #[test]
    fn double_dash_without_the_space_counts_only_before_a_short_block() {
        assert_eq!(
            strip_quoted("Thanks\n--\nJane Smith\n07700 900123\n"),
            "Thanks"
        );
        let long: String = std::iter::repeat_n("a line\n", 20).collect();
        let body = format!("Steps:\n--\n{long}");
        assert_eq!(strip_quoted(&body), body.trim_end());
    }

    #[test]
    fn nothing_new_gives_an_empty_string() {
        assert_eq!(strip_quoted(""), "");
        assert_eq!(strip_quoted("\n\n  \n"), "");
        assert_eq!(strip_quoted("> all\n> quote\n"), "");
        let empty_top_post =
            "\n\nOn 23/11/2026 10:00, Jane Smith <jane@opp.example> wrote:\n> Hi\n";
        assert_eq!(strip_quoted(empty_top_post), "");
        assert_eq!(strip_quoted("-- \nJane\n"), "");
        assert_eq!(strip_quoted("Sent from my iPhone\n"), "");
    }

    #[test]
    fn line_endings_and_blank_lines() {
        assert_eq!(strip_quoted("\r\n\r\nHello\r\n> Hi\r\n"), "Hello");
        assert_eq!(strip_quoted("Hello\r> Hi\rBye\r"), "Hello\nBye");
        // The sender's own blank lines stay; a removed quote leaves one.
        assert_eq!(strip_quoted("a\n\n\nb\n\n> q\n\n\nc\n"), "a\n\n\nb\n\nc");
        assert_eq!(strip_quoted("a\n> q\nc"), "a\nc");
    }

    #[test]
    fn a_greater_than_sign_inside_a_line_is_not_a_quote() {
        let body = "The fee went from £50 -> £80 > what I was told.\n";
        assert_eq!(strip_quoted(body), body.trim_end());
    }

    // ---- signature --------------------------------------------------------

    #[test]
    fn signature_after_the_delimiter() {
        let body = "Hello \n\n-- \nxxx\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)\n\n\nOn Tuesday, April 3, 2012 at 4:55 PM, xxx wrote:\n\n> Hello\n";
        assert_eq!(
            signature(body),
            Some("xxx\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)")
        );
        assert_eq!(
            signature("Hi\r\n-- \r\nJane\r\n07700 900123\r\n"),
            Some("Jane\r\n07700 900123")
        );
    }

    #[test]
    fn signature_from_a_sign_off() {
        let body = "My certificate has not arrived.\n\nKind regards,\nJane Smith\n07700 900123\n\nSent from my iPhone\n";
        assert_eq!(
            signature(body),
            Some("Kind regards,\nJane Smith\n07700 900123")
        );
        assert_eq!(
            signature("Please call.\nThanks, Jane"),
            Some("Thanks, Jane")
        );
        assert_eq!(signature("Please call.\n\nCheers\nJ"), Some("Cheers\nJ"));
        assert_eq!(
            signature("Bitte rufen Sie an.\n\nMit freundlichen Grüßen\nJohn Günther\n"),
            Some("Mit freundlichen Grüßen\nJohn Günther")
        );
        // The last sign-off wins.
        assert_eq!(
            signature("Thanks\nfor nothing.\n\nYours sincerely\n\nJane\n"),
            Some("Yours sincerely\n\nJane")
        );
    }

    #[test]
    fn no_signature_without_a_sign_off_or_in_the_wrong_place() {
        assert_eq!(signature(""), None);
        assert_eq!(signature("Please call me back."), None);
        assert_eq!(signature("Thanks for your help.\nI will wait."), None);
        // The first line is the message, not a sign-off.
        assert_eq!(signature("Thanks\nJane"), None);
        // Quoted history is ours, not theirs.
        let quoted = "OK\n\nOn 23/11/2026 10:00, QC <qc@opp.example> wrote:\n> Thanks\n> Kind regards\n> QC\n";
        assert_eq!(signature(quoted), None);
        // A forwarded signature is someone else's.
        let fwd = "See below\n\nBegin forwarded message:\n\nText\n\nKind regards\nTutor\n";
        assert_eq!(signature(fwd), None);
    }

    // ---- phone numbers ----------------------------------------------------

    #[test]
    fn uk_numbers_in_the_ways_people_write_them() {
        let cases = [
            ("01254 123456", "01254 123456"),
            ("01254 123 456", "01254 123456"),
            ("(01254) 123456", "01254 123456"),
            ("020 7946 0958", "020 7946 0958"),
            ("0207 946 0958", "020 7946 0958"),
            ("07700 900123", "07700 900123"),
            ("07700900123", "07700 900123"),
            ("+44 7700 900123", "07700 900123"),
            ("+447700900123", "07700 900123"),
            ("+44 (0)7700 900123", "07700 900123"),
            ("+44(0)1254 123456", "01254 123456"),
            ("0044 7700 900 123", "07700 900123"),
            ("0800 123 4567", "0800 123 4567"),
            ("0800 123456", "0800 123456"),
            ("0345 123 4567", "0345 123 4567"),
            ("028 9012 3456", "028 9012 3456"),
            ("0113 496 0000", "0113 496 0000"),
            ("0121 496 0000", "0121 496 0000"),
            ("07700.900.123", "07700 900123"),
            ("07700-900-123", "07700 900123"),
            ("01254-123456", "01254 123456"),
            ("01254 – 123456", "01254 123456"),
            ("07700 - 900 123", "07700 900123"),
        ];
        for (written, national) in cases {
            assert_eq!(uk_phone_numbers(written), [national], "{written}");
            let in_text = format!("Tel: {written}.");
            assert_eq!(uk_phone_numbers(&in_text), [national], "{in_text}");
        }
    }

    #[test]
    fn several_numbers_in_order_without_repeats() {
        assert_eq!(
            uk_phone_numbers("Tel: 01254 123456 Mob: 07700 900123 (or 07700900123)"),
            ["01254 123456", "07700 900123"]
        );
        assert_eq!(
            uk_phone_numbers("01254 123456 / 07700 900123"),
            ["01254 123456", "07700 900123"]
        );
        assert_eq!(
            uk_phone_numbers("01254 123456 07700 900123"),
            ["01254 123456", "07700 900123"]
        );
        assert_eq!(uk_phone_numbers("Tel.01254 123456"), ["01254 123456"]);
        assert_eq!(uk_phone_numbers("tel:+441254123456"), ["01254 123456"]);
        assert_eq!(uk_phone_numbers("ID12345 07700 900123"), ["07700 900123"]);
        assert_eq!(uk_phone_numbers("07700 900123 10am-4pm"), ["07700 900123"]);
    }

    #[test]
    fn things_that_are_not_phone_numbers() {
        for text in [
            "23/11/2026",
            "2026-11-23",
            "01/12/2026",
            "01.12.2026",
            "01-12-2026 10:00",
            "OPP-2026-0042",
            "case OPP-2026-00421234",
            "BB1 2AB",
            "EC1A 1BB",
            "order 0123456789012345",
            "order 012345678901",
            "account 12345678 sort code 01-23-45",
            "card 0123 4567 8901 2345",
            "09:30-17:00",
            "10.30",
            "£0.50",
            "+33 1 23 45 67 89",
            "+1 212 555 0100",
            "0033 1 23 45 67 89",
            "0412 345678",
            "06123 456789",
            "012 3456",
            "01254 12345678",
            "01254 123456/7",
            "v2.01254123456",
            "ref0125412345",
        ] {
            assert_eq!(uk_phone_numbers(text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn signature_phone_prefers_the_signature_and_ignores_history() {
        let body = "I rang 0800 123 4567 twice.\n\nKind regards,\nJane Smith\nMobile: 07700 900123\n\n\
            On 23/11/2026 10:00, OPP Complaints <complaints@opp.example> wrote:\n> Call us on 01254 123456\n";
        assert_eq!(signature_phone(body).as_deref(), Some("07700 900123"));
        let delimiter = "Hi\n\n-- \nJane Smith\nTel: +44 (0)1254 123 456\n";
        assert_eq!(signature_phone(delimiter).as_deref(), Some("01254 123456"));
        // No signature: the last lines of the sender's own text.
        let tail = "My certificate has not arrived.\nPlease ring me on 07700 900123.\n";
        assert_eq!(signature_phone(tail).as_deref(), Some("07700 900123"));
        // Only quoted or forwarded numbers: none of them are the sender's.
        let quoted = "OK\n\nOn 23/11/2026 10:00, QC <qc@opp.example> wrote:\n> Call 01254 123456\n";
        assert_eq!(signature_phone(quoted), None);
        let outlook = "OK\n\n-----Original Message-----\nFrom: QC\nSent: today\nSubject: x\n\nCall 01254 123456\n";
        assert_eq!(signature_phone(outlook), None);
        let fwd = "See below\n\nBegin forwarded message:\n\nKind regards\nTutor\n01254 123456\n";
        assert_eq!(signature_phone(fwd), None);
        // A number early in a long message is not taken as theirs.
        let early = format!(
            "I rang 0800 123 4567.\n{}Jane\n",
            "More detail.\n".repeat(6)
        );
        assert_eq!(signature_phone(&early), None);
        // A signature without a number falls back to the last lines.
        let no_number_in_sig = "Please call 07700 900123.\n\nThanks,\nJane\n";
        assert_eq!(
            signature_phone(no_number_in_sig).as_deref(),
            Some("07700 900123")
        );
    }

    // ---- dates ------------------------------------------------------------

    #[test]
    fn long_dates() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert_eq!(uk_long_date(d("2026-12-18")), "Friday 18 December 2026");
        assert_eq!(uk_long_date(d("2027-01-01")), "Friday 1 January 2027");
        assert_eq!(uk_long_date(d("2026-11-23")), "Monday 23 November 2026");
    }

    // ---- properties -------------------------------------------------------

    /// Mail-like bodies: the lines this module looks for, in any order.
    fn mailish() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just(String::new()),
            Just("  ".to_string()),
            "[a-zA-Z0-9 ,.:>()+-]{0,40}",
            "> [a-z ]{0,20}",
            Just("On 23/11/2026 10:00, Jane <jane@example.net> wrote:".to_string()),
            Just("On Mon, 23 Nov 2026 at 10:00, Jane <jane@example.net>".to_string()),
            Just("wrote:".to_string()),
            Just("-----Original Message-----".to_string()),
            Just("________________________________".to_string()),
            Just("From: Jane <jane@example.net>".to_string()),
            Just("Sent: 23 November 2026 10:00".to_string()),
            Just("To: complaints@opp.example".to_string()),
            Just("Subject: FW: x".to_string()),
            Just("Subject: RE: x".to_string()),
            Just("Begin forwarded message:".to_string()),
            Just("-- ".to_string()),
            Just("--".to_string()),
            Just("Kind regards,".to_string()),
            Just("Sent from my iPhone".to_string()),
            Just("07700 900123".to_string()),
        ];
        (
            prop::collection::vec(line, 0..30),
            prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        )
            .prop_map(|(lines, eol)| lines.join(eol))
    }

    /// Whether `out`'s lines are some of `input`'s lines, in the same order.
    fn is_subsequence(out: &str, input: &str) -> bool {
        if out.is_empty() {
            return true;
        }
        let mut input = split_lines(input).into_iter().map(|l| l.text);
        out.split('\n').all(|o| input.any(|i| i == o))
    }

    proptest! {
        #[test]
        fn strip_quoted_only_keeps_input_lines_in_order(body in mailish()) {
            let out = strip_quoted(&body);
            prop_assert!(is_subsequence(&out, &body), "{out:?} from {body:?}");
            let lines: Vec<&str> = out.split('\n').collect();
            if let (Some(first), Some(last)) = (lines.first(), lines.last()) {
                prop_assert!(out.is_empty() || (!first.trim().is_empty() && !last.trim().is_empty()), "{out:?}");
            }
        }

        #[test]
        fn strip_quoted_never_panics_and_keeps_input_lines(body in any::<String>()) {
            let out = strip_quoted(&body);
            prop_assert!(is_subsequence(&out, &body));
        }

        #[test]
        fn signature_is_a_slice_of_the_body(body in mailish()) {
            if let Some(sig) = signature(&body) {
                prop_assert!(body.contains(sig));
                prop_assert!(!sig.trim().is_empty());
            }
            let _ = signature_phone(&body);
        }

        #[test]
        fn phone_numbers_never_panic(text in any::<String>()) {
            for n in uk_phone_numbers(&text) {
                let digits = n.chars().filter(char::is_ascii_digit).count();
                prop_assert!(n.starts_with('0') && (digits == 10 || digits == 11), "{n}");
                prop_assert!(n.chars().all(|c| c.is_ascii_digit() || c == ' '), "{n}");
            }
        }

        #[test]
        fn phone_numbers_in_digit_soup_are_well_formed(text in "[0-9 ()+./:-]{0,60}") {
            for n in uk_phone_numbers(&text) {
                let digits: String = n.chars().filter(char::is_ascii_digit).collect();
                prop_assert!(format_national(&digits).as_deref() == Some(n.as_str()), "{n}");
            }
        }

        #[test]
        fn any_mobile_number_is_found_however_it_is_written(
            rest in "[0-9]{9}",
            cut in 0usize..9,
            sep in prop_oneof![Just(""), Just(" "), Just("-"), Just("."), Just(" - ")],
            prefix in prop_oneof![Just("0"), Just("+44 "), Just("+44 (0)"), Just("0044 ")],
        ) {
            let written = format!("{prefix}7{}{sep}{}", &rest[..cut], &rest[cut..]);
            let found = uk_phone_numbers(&format!("Call me on {written} please"));
            prop_assert_eq!(found, vec![format!("07{} {}", &rest[..3], &rest[3..])], "{}", written);
        }
    }
}
