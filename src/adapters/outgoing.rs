//! Builds the bytes of a mail redress sends (lettre's message builder).
//!
//! Every generated mail carries, per RFC 3834 and common practice, so that
//! no auto-responder answers it and no loop starts:
//! - `Auto-Submitted: auto-replied` (answers to a mail) or `auto-generated`;
//! - `X-Auto-Response-Suppress: All` (Microsoft Exchange/Outlook);
//! - a Message-ID on our own domain, fixed when the row is queued;
//! - `In-Reply-To`/`References` to the mail it answers.
//!
//! A letter is multipart/alternative: the text template and the HTML one.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

/// RFC 3834 `Auto-Submitted` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoSubmitted {
    /// A reply to a mail (acknowledgements, notices about a mail).
    Replied,
    /// Made by redress on its own (timers, notifications).
    Generated,
}

/// One mail to build.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub from_name: &'a str,
    pub from_address: &'a str,
    pub to_name: &'a str,
    pub to_address: &'a str,
    pub reply_to: Option<&'a str>,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// Without angle brackets.
    pub message_id: &'a str,
    /// Message-IDs without angle brackets.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub auto_submitted: AutoSubmitted,
    pub date: DateTime<Utc>,
}

/// Whether mail can be addressed to `address` at all.
pub fn is_sendable(address: &str) -> bool {
    !address.is_empty() && address.parse::<lettre::Address>().is_ok()
}

fn mailbox(name: &str, address: &str) -> anyhow::Result<Mailbox> {
    let address = address
        .parse()
        .with_context(|| format!("address {address:?}"))?;
    Ok(Mailbox::new(
        (!name.trim().is_empty()).then(|| name.trim().to_string()),
        address,
    ))
}

/// How many ids a letter's References keeps, and how long one may be.
const MAX_REFERENCES: usize = 20;
const MAX_ID_LEN: usize = 250;

/// A References header a server takes: ids of a sane length, and of a
/// long thread the first and the newest (RFC 5322 §3.6.4 lets the middle
/// go), so a mail quoting thousands of ids, or a huge one, still gets its
/// letter.
fn trim_references(refs: Vec<String>) -> Vec<String> {
    let refs: Vec<String> = refs
        .into_iter()
        .filter(|r| !r.is_empty() && r.len() <= MAX_ID_LEN)
        .collect();
    if refs.len() <= MAX_REFERENCES {
        return refs;
    }
    let newest = refs.len() - (MAX_REFERENCES - 1);
    std::iter::once(refs[0].clone())
        .chain(refs[newest..].iter().cloned())
        .collect()
}

/// The raw RFC 5322 bytes.
pub fn build(o: &Outgoing) -> anyhow::Result<Vec<u8>> {
    let mut b = Message::builder()
        .from(mailbox(o.from_name, o.from_address)?)
        .to(mailbox(o.to_name, o.to_address)?)
        .subject(o.subject)
        .message_id(Some(format!("<{}>", o.message_id)))
        .date(o.date.into())
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            match o.auto_submitted {
                AutoSubmitted::Replied => "auto-replied".into(),
                AutoSubmitted::Generated => "auto-generated".into(),
            },
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ));
    if let Some(r) = o.reply_to {
        b = b.reply_to(mailbox("", r)?);
    }
    if let Some(parent) = o.in_reply_to {
        b = b.in_reply_to(format!("<{parent}>"));
    }
    let mut refs: Vec<String> = o.references.to_vec();
    if let Some(parent) = o.in_reply_to {
        if !refs.iter().any(|r| r == parent) {
            refs.push(parent.to_string());
        }
    }
    let refs = trim_references(refs);
    if !refs.is_empty() {
        let joined = refs
            .iter()
            .map(|r| format!("<{r}>"))
            .collect::<Vec<_>>()
            .join(" ");
        b = b.references(joined);
    }
    let body = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(o.text.to_string()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(o.html.to_string()),
        );
    let message = b.multipart(body).context("Building the message")?;
    Ok(message.formatted())
}

/// The same letter to someone else: `raw` (bytes [`build`] made) with a
/// new recipient and Message-ID, and all else as it was: sender, subject,
/// both bodies, Reply-To, threading, `Auto-Submitted`, date.
pub fn readdress(
    raw: &[u8],
    to_name: &str,
    to_address: &str,
    message_id: &str,
) -> anyhow::Result<Vec<u8>> {
    use mail_parser::{HeaderValue as Value, MessageParser};
    let msg = MessageParser::default()
        .parse(raw)
        .context("Reading a queued letter")?;
    let from = msg
        .from()
        .and_then(|a| a.first())
        .context("A queued letter without a From")?;
    let ids = |v: &Value| -> Vec<String> {
        match v {
            Value::Text(t) => vec![t.to_string()],
            Value::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let in_reply_to = ids(msg.in_reply_to()).into_iter().next();
    let references = ids(msg.references());
    let auto_submitted = match msg.header_raw("Auto-Submitted").map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("auto-replied") => AutoSubmitted::Replied,
        _ => AutoSubmitted::Generated,
    };
    let date = msg
        .date()
        .and_then(|d| DateTime::parse_from_rfc3339(&d.to_rfc3339()).ok())
        .context("A queued letter without a Date")?
        .with_timezone(&Utc);
    build(&Outgoing {
        from_name: from.name().unwrap_or_default(),
        from_address: from.address().unwrap_or_default(),
        to_name,
        to_address,
        reply_to: msg
            .reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        subject: msg.subject().unwrap_or_default(),
        text: &msg.body_text(0).unwrap_or_default(),
        html: &msg.body_html(0).unwrap_or_default(),
        message_id,
        in_reply_to: in_reply_to.as_deref(),
        references: &references,
        auto_submitted,
        date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_thread_keeps_its_first_and_newest_references_only() {
        let refs: Vec<String> = (0..1000).map(|i| format!("{i}@example.net")).collect();
        let mut with_huge = refs.clone();
        with_huge.insert(500, format!("{}@example.net", "x".repeat(5000)));
        let kept = trim_references(with_huge);
        assert_eq!(kept.len(), MAX_REFERENCES);
        assert_eq!(kept[0], "0@example.net");
        assert_eq!(kept[MAX_REFERENCES - 1], "999@example.net");
        assert_eq!(kept[1], "981@example.net");
        assert!(kept.iter().all(|r| r.len() <= MAX_ID_LEN));
        let short: Vec<String> = refs[..3].to_vec();
        assert_eq!(trim_references(short.clone()), short);
    }

    #[test]
    fn a_readdressed_letter_keeps_everything_but_its_recipient_and_id() {
        let refs = vec!["older@example.net".to_string()];
        let text = "Dear Zoë,\n\nWe are sorry: the course – and its 💡 – was cancelled. A long line that goes on and on past the seventy-six characters quoted-printable allows, to be folded.\n";
        let letter = Outgoing {
            from_name: "OP Performance Limited",
            from_address: "complaints@opp.example",
            to_name: "Zoë Old",
            to_address: "zoe.old@example.net",
            reply_to: Some("complaints+OPP-2026-0001@opp.example"),
            subject: "Our response to your complaint [OPP-2026-0001] – Zoë",
            text,
            html: "<p>Dear Zoë,</p>",
            message_id: "r4.OPP-2026-0001.abc@opp.example",
            in_reply_to: Some("complaint@example.net"),
            references: &refs,
            auto_submitted: AutoSubmitted::Generated,
            date: "2026-11-23T10:00:00Z".parse().expect("date"),
        };
        let before = build(&letter).expect("build");
        let after = readdress(
            &before,
            "Zoë New",
            "zoe@example.org",
            "r4.OPP-2026-0001.def@opp.example",
        )
        .expect("readdress");
        let parse = |raw: &[u8]| {
            mail_parser::MessageParser::default()
                .parse(raw)
                .expect("parse")
                .into_owned()
        };
        let (a, b) = (parse(&before), parse(&after));
        assert_eq!(a.body_text(0), b.body_text(0));
        assert!(b.body_text(0).is_some_and(|t| t.contains("💡")));
        assert_eq!(a.body_html(0), b.body_html(0));
        assert_eq!(a.subject(), b.subject());
        assert_eq!(a.date(), b.date());
        assert_eq!(a.in_reply_to(), b.in_reply_to());
        assert_eq!(a.references(), b.references());
        assert_eq!(a.from(), b.from());
        assert_eq!(a.reply_to(), b.reply_to());
        assert_eq!(
            b.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        let to = b.to().and_then(|t| t.first()).expect("to");
        assert_eq!(to.address(), Some("zoe@example.org"));
        assert_eq!(to.name(), Some("Zoë New"));
        assert_eq!(b.message_id(), Some("r4.OPP-2026-0001.def@opp.example"));
    }

    #[test]
    fn generated_mail_carries_the_loop_guards() {
        let refs = vec!["older@example.net".to_string()];
        let raw = build(&Outgoing {
            from_name: "OP Performance Limited",
            from_address: "complaints@opp.example",
            to_name: "Alice Example",
            to_address: "alice@example.net",
            reply_to: Some("complaints@opp.example"),
            subject: "We have received your complaint [OPP-2026-0001]",
            text: "Dear Alice,\n",
            html: "<p>Dear Alice,</p>",
            message_id: "r1.OPP-2026-0001.abc@opp.example",
            in_reply_to: Some("complaint@example.net"),
            references: &refs,
            auto_submitted: AutoSubmitted::Replied,
            date: "2026-11-23T10:00:00Z".parse().expect("date"),
        })
        .expect("build");
        let text = String::from_utf8(raw).expect("utf8");
        for needle in [
            "Auto-Submitted: auto-replied",
            "X-Auto-Response-Suppress: All",
            "Message-ID: <r1.OPP-2026-0001.abc@opp.example>",
            "In-Reply-To: <complaint@example.net>",
            "References: <older@example.net> <complaint@example.net>",
            "Subject: We have received your complaint [OPP-2026-0001]",
            "multipart/alternative",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
    }
}
