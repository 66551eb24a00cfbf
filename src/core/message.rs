//! An incoming mail as plain facts: what the parser adapter extracts and
//! every core decision (classification, threading, intake) reads.
//!
//! Pure data: building one from bytes is the adapter's job
//! (`adapters::mail_parse`); tests build them by hand.

/// A mailbox: display name and address (address lower-cased by the parser).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    pub name: String,
    pub address: String,
}

/// An attachment's facts (the bytes stay in the raw message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

/// One incoming mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inbound {
    /// Without angle brackets; synthesised from a hash of the raw bytes when
    /// the mail has none (see `synthetic_message_id`).
    pub message_id: String,
    pub message_id_synthetic: bool,
    /// Message-IDs without angle brackets.
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// The envelope sender as the delivering server recorded it
    /// (`Return-Path`): `Some("")` for the null sender `<>`.
    pub return_path: Option<String>,
    pub subject: String,
    /// RFC 3339 UTC, when the Date header parsed.
    pub date: Option<String>,
    /// Every header as (lower-case name, unfolded decoded value), in order.
    pub headers: Vec<(String, String)>,
    /// The top-level MIME type, lower case, e.g. `multipart/report`.
    pub content_type: String,
    /// The `report-type` parameter of a multipart/report, lower case.
    pub report_type: Option<String>,
    /// The readable text (HTML-only mail converted to text).
    pub body_text: String,
    pub attachments: Vec<Attachment>,
}

impl Inbound {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the header is present at all.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The sender's address, lower case ("" when there is none).
    pub fn from_address(&self) -> &str {
        self.from.as_ref().map(|m| m.address.as_str()).unwrap_or("")
    }

    /// Where letters to this sender go: Reply-To when given, else From.
    pub fn reply_address(&self) -> &str {
        match &self.reply_to {
            Some(r) if !r.address.is_empty() => &r.address,
            _ => self.from_address(),
        }
    }

    /// Every Message-ID this mail refers to: In-Reply-To first, then
    /// References newest first.
    pub fn referenced_ids(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.in_reply_to.iter().map(String::as_str).collect();
        for r in self.references.iter().rev() {
            if !out.contains(&r.as_str()) {
                out.push(r);
            }
        }
        out
    }
}

/// A stable Message-ID for a mail that has none: a hash of its bytes, so
/// the same mail fetched twice dedupes to the same row.
pub fn synthetic_message_id(sha256_hex: &str) -> String {
    format!(
        "{}@synthetic.redress.invalid",
        &sha256_hex[..sha256_hex.len().min(40)]
    )
}

/// One line of display text: control characters (CR, LF, tabs...) become
/// spaces, runs of spaces one, and at most `max` characters are kept.
pub fn clean_line(s: &str, max: usize) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    out
}

/// The domain of a Message-ID (`abc@example.org` -> `example.org`).
pub fn message_id_domain(id: &str) -> &str {
    id.rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .unwrap_or("")
}

/// Whether `e` (lower case) is address `a` or one of its plus-addresses
/// (`a`'s local part, `+`, anything, at `a`'s domain).
pub fn is_or_plus_of(e: &str, a: &str) -> bool {
    let a = a.to_ascii_lowercase();
    e == a
        || match (e.rsplit_once('@'), a.rsplit_once('@')) {
            (Some((el, ed)), Some((al, ad))) => {
                ed == ad
                    && el
                        .strip_prefix(al)
                        .is_some_and(|rest| rest.starts_with('+'))
            }
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_addresses_of_an_address_are_its_own() {
        let desk = "Complaints+UK@opp.example";
        for e in [
            "complaints+uk@opp.example",
            "complaints+uk+opp-2026-0001@opp.example",
        ] {
            assert!(is_or_plus_of(e, desk), "{e}");
        }
        for e in [
            "complaints@opp.example",
            "complaints+ukx@opp.example",
            "complaints+uk@other.example",
            "xcomplaints+uk+1@opp.example",
        ] {
            assert!(!is_or_plus_of(e, desk), "{e}");
        }
        assert!(is_or_plus_of("head+x@opp.example", "head@opp.example"));
    }

    #[test]
    fn reply_address_prefers_reply_to() {
        let mut m = Inbound {
            from: Some(Mailbox {
                name: "A".into(),
                address: "a@example.net".into(),
            }),
            ..Inbound::default()
        };
        assert_eq!(m.reply_address(), "a@example.net");
        m.reply_to = Some(Mailbox {
            name: String::new(),
            address: "b@example.net".into(),
        });
        assert_eq!(m.reply_address(), "b@example.net");
    }

    #[test]
    fn clean_line_keeps_one_bounded_line() {
        assert_eq!(
            clean_line("Jo\r\n\r\nYour refund\tis ready", 100),
            "Jo Your refund is ready"
        );
        assert_eq!(clean_line("  a   b ", 100), "a b");
        assert_eq!(clean_line("abcdef", 4), "abc…");
        assert_eq!(clean_line("", 4), "");
    }

    #[test]
    fn referenced_ids_put_in_reply_to_first_without_repeats() {
        let m = Inbound {
            in_reply_to: vec!["c@x".into()],
            references: vec!["a@x".into(), "b@x".into(), "c@x".into()],
            ..Inbound::default()
        };
        assert_eq!(m.referenced_ids(), ["c@x", "b@x", "a@x"]);
        assert_eq!(message_id_domain("abc@opp.example"), "opp.example");
    }
}
