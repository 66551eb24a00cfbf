//! Raw mail bytes -> [`Inbound`] facts, with the `mail-parser` crate.
//!
//! This is the only place that reads RFC 5322 / MIME; everything after it
//! (classification, threading, intake) works on the plain [`Inbound`].
//!
//! Invariants:
//! - [`parse`] never panics, whatever the bytes (a proptest feeds it random
//!   bytes and mangled messages). Mail it cannot read at all is a
//!   [`ParseError`], never a half-filled `Inbound`.
//! - Every `Inbound` has a Message-ID: the mail's own (without angle
//!   brackets), or one synthesised from the SHA-256 of the *raw* bytes as
//!   fetched, so the same mail fetched twice gets the same id.
//! - Addresses are lower-cased; groups (RFC 5322 §3.4) are flattened.
//! - LF, CRLF and CR-only line endings and a leading mbox `From ` line are
//!   all accepted: the bytes are normalised before `mail-parser` sees them.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use mail_parser::{
    parsers::MessageStream, Address, HeaderValue, Message, MessageParser, MimeHeaders,
};
use sha2::{Digest, Sha256};

use crate::core::message::clean_line;
use crate::core::message::{synthetic_message_id, Attachment, Inbound, Mailbox};

/// Why a mail could not be turned into an [`Inbound`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Zero bytes (or only an mbox separator line).
    #[error("the message is empty")]
    Empty,
    /// `mail-parser` found no header section at all.
    #[error("no RFC 5322 header section could be read")]
    Unreadable,
    /// A header section was found but it holds no header field.
    #[error("the message has no From and no header fields")]
    NoHeaders,
}

/// Parses one raw mail (as stored, as fetched over IMAP).
pub fn parse(raw: &[u8]) -> Result<Inbound, ParseError> {
    let bytes = normalise(raw);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let msg = MessageParser::default()
        .parse(bytes.as_ref())
        .ok_or(ParseError::Unreadable)?;
    let headers = headers(&msg);
    if headers.is_empty() {
        return Err(ParseError::NoHeaders);
    }

    let (message_id, message_id_synthetic) = match msg.message_id().map(clean_id) {
        Some(id) if !id.is_empty() => (id, false),
        _ => (
            synthetic_message_id(&hex::encode(Sha256::digest(raw))),
            true,
        ),
    };

    let root = msg.root_part();
    let (content_type, report_type) = match root.content_type() {
        Some(ct) => {
            let full = match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            }
            .to_ascii_lowercase();
            let report = (full == "multipart/report")
                .then(|| ct.attribute("report-type"))
                .flatten()
                .map(|r| r.trim().to_ascii_lowercase());
            (full, report)
        }
        // RFC 2045 §5.2: no Content-Type means plain US-ASCII text.
        None => ("text/plain".to_string(), None),
    };

    let mut inbound = Inbound {
        message_id,
        message_id_synthetic,
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        from: msg.from().and_then(first_mailbox),
        reply_to: msg.reply_to().and_then(first_mailbox),
        to: msg.all_to().flat_map(mailboxes).collect(),
        cc: msg.all_cc().flat_map(mailboxes).collect(),
        return_path: return_path(&msg),
        subject: msg
            .subject()
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        date: msg.date().and_then(|d| rfc3339_utc(&d.to_rfc3339())),
        headers,
        content_type,
        report_type,
        body_text: body_text(&msg),
        attachments: attachments(&msg),
    };
    // Names and subjects go into letters and notices: no control characters
    // (an encoded CR/LF must not add lines to a letter), bounded length.
    inbound.subject = clean_line(&inbound.subject, 500);
    for mb in inbound
        .from
        .iter_mut()
        .chain(inbound.reply_to.iter_mut())
        .chain(inbound.to.iter_mut())
        .chain(inbound.cc.iter_mut())
    {
        mb.name = clean_line(&mb.name, 120);
    }
    Ok(inbound)
}

/// Strips what is not part of an RFC 5322 message (a UTF-8 byte order mark,
/// an mbox `From ` separator line) and turns CR-only line endings (old Mac
/// mailboxes) into LF, which `mail-parser` reads like CRLF.
fn normalise(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut bytes = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    // mbox (RFC 4155): the first line is `From sender date`, with no colon
    // after `From`; a header would be `From:` (or obsolete `From :`).
    let after_from = bytes.strip_prefix(b"From ").map(|rest| {
        let start = rest.iter().position(|&b| b != b' ' && b != b'\t');
        start.and_then(|i| rest.get(i)).copied()
    });
    if matches!(after_from, Some(next) if next != Some(b':')) {
        bytes = match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(end) => {
                let mut rest = &bytes[end..];
                if let Some(r) = rest.strip_prefix(b"\r") {
                    rest = r;
                }
                rest.strip_prefix(b"\n").unwrap_or(rest)
            }
            None => &[],
        };
    }
    // Blank lines before the header section (some exports start with one)
    // would read as an empty header section.
    while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
        if bytes[..end].iter().all(|&b| b == b' ' || b == b'\t') && end + 1 < bytes.len() {
            let mut rest = &bytes[end..];
            if let Some(r) = rest.strip_prefix(b"\r") {
                rest = r;
            }
            bytes = rest.strip_prefix(b"\n").unwrap_or(rest);
        } else {
            break;
        }
    }
    // CR-only when the first line break is a bare CR.
    let first_break = bytes.iter().position(|&b| b == b'\n' || b == b'\r');
    let cr_only = first_break
        .is_some_and(|i| bytes[i] == b'\r' && bytes.get(i + 1).is_none_or(|&b| b != b'\n'));
    if !cr_only {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
            out.push(b'\n');
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// A Message-ID without angle brackets or surrounding space.
fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The ids of an In-Reply-To or References header, without brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .map(clean_id)
        .filter(|id| !id.is_empty())
        .collect()
}

fn mailbox(addr: &mail_parser::Addr<'_>) -> Option<Mailbox> {
    let name = addr.name.as_deref().unwrap_or("").trim().to_string();
    let address = addr.address.as_deref().unwrap_or("").trim().to_lowercase();
    (!name.is_empty() || !address.is_empty()).then_some(Mailbox { name, address })
}

/// Every mailbox of an address header, groups flattened.
fn mailboxes<'a>(address: &'a Address<'_>) -> impl Iterator<Item = Mailbox> + 'a {
    address.iter().filter_map(mailbox)
}

/// The first mailbox that has an address, else the first one at all.
fn first_mailbox(address: &Address<'_>) -> Option<Mailbox> {
    let all: Vec<Mailbox> = mailboxes(address).collect();
    all.iter()
        .find(|m| !m.address.is_empty())
        .or(all.first())
        .cloned()
}

/// The top `Return-Path` (the delivering server prepends it, RFC 5321
/// §4.4), read from the raw value because `mail-parser` drops the null
/// sender `<>`, which is exactly the one that matters (bounces, RFC 3834
/// auto-replies).
fn return_path(msg: &Message<'_>) -> Option<String> {
    let raw = msg.header_raw("Return-Path")?;
    let value = unfold(raw);
    let value = value.trim();
    let inner = match value.find('<') {
        Some(start) => {
            let rest = &value[start + 1..];
            rest.find('>').map(|end| &rest[..end]).unwrap_or(rest)
        }
        None => value,
    };
    Some(inner.trim().to_lowercase())
}

/// Every top-level header in order, name lower-cased, value unfolded and
/// RFC 2047 encoded words decoded. A "name" that is not an RFC 5322 §3.6.8
/// field name (printable ASCII but colon) is a line of garbage that
/// `mail-parser` kept, not a header, and is left out.
fn headers(msg: &Message<'_>) -> Vec<(String, String)> {
    msg.headers()
        .iter()
        .filter(|h| {
            let name = h.name.as_str();
            !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
        })
        .map(|h| {
            let name = h.name.as_str().to_ascii_lowercase();
            let raw = msg
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            (name, decode_header_value(raw))
        })
        .collect()
}

fn decode_header_value(raw: &[u8]) -> String {
    // `parse_unstructured` stops at the line break that ends the field; make
    // sure there is one even for a last header with no newline.
    let mut line = raw.to_vec();
    line.push(b'\n');
    match MessageStream::new(&line).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_string(),
        _ => unfold(&String::from_utf8_lossy(raw)).trim().to_string(),
    }
}

/// RFC 5322 §2.2.3: a folded line break is CRLF followed by white space.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .collect::<Vec<_>>()
        .join("")
}

/// An RFC 3339 date from `mail-parser`, as UTC; `None` when it is not a real
/// instant (month 13, offset 99:00...).
fn rfc3339_utc(value: &str) -> Option<String> {
    let parsed = DateTime::parse_from_rfc3339(value).ok()?;
    Some(
        parsed
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// The readable text: every inline text part (HTML converted to text when
/// a part has no plain alternative), separated by a blank line, with CRLF
/// turned into LF and any byte order mark removed.
fn body_text(msg: &Message<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for i in 0..msg.text_body_count() {
        if let Some(text) = msg.body_text(i) {
            let text = text.replace("\r\n", "\n").replace('\u{feff}', "");
            let text = text.trim_end_matches('\n');
            if !text.trim().is_empty() {
                parts.push(text.to_string());
            }
        }
    }
    parts.join("\n\n")
}

fn attachments(msg: &Message<'_>) -> Vec<Attachment> {
    msg.attachments()
        .map(|part| Attachment {
            filename: part.attachment_name().unwrap_or("").trim().to_string(),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string())
                .to_ascii_lowercase(),
            size: part.len() as u64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PLAIN: &str = "Return-Path: <jo@example.net>\r\n\
From: \"Jo Bloggs\" <Jo.Bloggs@Example.NET>\r\n\
To: Complaints <complaints@opp.example>, team: a@x.example, b@x.example;\r\n\
Cc: c@x.example\r\n\
Subject: =?utf-8?q?Caf=C3=A9?= complaint\r\n\tcontinued\r\n\
Date: Tue, 1 Oct 2024 10:00:00 +0100\r\n\
Message-ID: <abc@example.net>\r\n\
In-Reply-To: <r1@opp.example>\r\n\
References: <r0@opp.example>\r\n\t<r1@opp.example>\r\n\
\r\n\
\u{feff}Hello,\r\nthe tutor never came.\r\n";

    #[test]
    fn plain_message_fills_every_field() {
        let m = parse(PLAIN.as_bytes()).expect("parses");
        assert_eq!(m.message_id, "abc@example.net");
        assert!(!m.message_id_synthetic);
        assert_eq!(m.in_reply_to, ["r1@opp.example"]);
        assert_eq!(m.references, ["r0@opp.example", "r1@opp.example"]);
        let from = m.from.clone().expect("from");
        assert_eq!(from.name, "Jo Bloggs");
        assert_eq!(from.address, "jo.bloggs@example.net");
        let to: Vec<&str> = m.to.iter().map(|t| t.address.as_str()).collect();
        assert_eq!(to, ["complaints@opp.example", "a@x.example", "b@x.example"]);
        assert_eq!(m.cc[0].address, "c@x.example");
        assert_eq!(m.return_path.as_deref(), Some("jo@example.net"));
        assert_eq!(m.subject, "Café complaint continued");
        assert_eq!(m.date.as_deref(), Some("2024-10-01T09:00:00Z"));
        assert_eq!(m.content_type, "text/plain");
        assert_eq!(m.report_type, None);
        assert_eq!(m.body_text, "Hello,\nthe tutor never came.");
        assert_eq!(m.header("subject"), Some("Café complaint continued"));
        assert_eq!(
            m.header("references"),
            Some("<r0@opp.example> <r1@opp.example>")
        );
        let names: Vec<&str> = m.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "return-path",
                "from",
                "to",
                "cc",
                "subject",
                "date",
                "message-id",
                "in-reply-to",
                "references"
            ]
        );
    }

    #[test]
    fn lf_crlf_cr_and_mbox_parse_alike() {
        let crlf = parse(PLAIN.as_bytes()).expect("crlf");
        let lf = parse(PLAIN.replace("\r\n", "\n").as_bytes()).expect("lf");
        let cr = parse(PLAIN.replace("\r\n", "\r").as_bytes()).expect("cr");
        let mbox = format!("From jo@example.net Tue Oct  1 10:00:00 2024\n{PLAIN}");
        let mbox = parse(mbox.as_bytes()).expect("mbox");
        for other in [&lf, &cr, &mbox] {
            assert_eq!(other.message_id, crlf.message_id);
            assert_eq!(other.subject, crlf.subject);
            assert_eq!(other.from, crlf.from);
            assert_eq!(other.references, crlf.references);
            assert_eq!(other.body_text, crlf.body_text);
            assert_eq!(other.headers, crlf.headers);
        }
    }

    #[test]
    fn missing_message_id_is_synthesised_from_the_raw_bytes() {
        let raw = b"From: a@example.net\nSubject: hi\n\nbody\n";
        let a = parse(raw).expect("parses");
        let b = parse(raw).expect("parses");
        assert!(a.message_id_synthetic);
        assert_eq!(a.message_id, b.message_id);
        assert!(a.message_id.ends_with("@synthetic.redress.invalid"));
        let other = parse(b"From: a@example.net\nSubject: hi\n\nbody!\n").expect("parses");
        assert_ne!(a.message_id, other.message_id);
    }

    #[test]
    fn null_return_path_is_empty_string() {
        let m = parse(b"Return-Path: <>\nFrom: MAILER-DAEMON@mx.example\n\nx\n").expect("parses");
        assert_eq!(m.return_path.as_deref(), Some(""));
        let m = parse(b"From: a@example.net\n\nx\n").expect("parses");
        assert_eq!(m.return_path, None);
    }

    #[test]
    fn multipart_report_gives_type_report_type_and_attachments() {
        let raw = "From: MAILER-DAEMON@mx.example (Mail Delivery System)\n\
Subject: Undelivered Mail Returned to Sender\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=Delivery-Status;\n\tboundary=\"B\"\n\
\n\
--B\n\
Content-Type: text/plain\n\
\n\
I'm sorry to have to inform you that your message could not be delivered.\n\
--B\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.example\n\
\n\
Final-Recipient: rfc822; x@example.org\n\
Action: failed\n\
Status: 5.1.1\n\
--B\n\
Content-Type: application/pdf; name=\"letter.pdf\"\n\
Content-Disposition: attachment; filename=\"letter.pdf\"\n\
Content-Transfer-Encoding: base64\n\
\n\
aGVsbG8gd29ybGQ=\n\
--B--\n";
        let m = parse(raw.as_bytes()).expect("parses");
        assert_eq!(m.content_type, "multipart/report");
        assert_eq!(m.report_type.as_deref(), Some("delivery-status"));
        assert!(m.body_text.starts_with("I'm sorry"), "{:?}", m.body_text);
        let pdf = m
            .attachments
            .iter()
            .find(|a| a.filename == "letter.pdf")
            .expect("pdf attachment");
        assert_eq!(pdf.content_type, "application/pdf");
        assert_eq!(pdf.size, 11);
        assert_eq!(m.from_address(), "mailer-daemon@mx.example");
    }

    #[test]
    fn html_only_mail_becomes_text() {
        let raw = b"From: a@example.net\nContent-Type: text/html; charset=utf-8\n\n<p>Hello <b>there</b></p>\n";
        let m = parse(raw).expect("parses");
        assert_eq!(m.content_type, "text/html");
        assert!(m.body_text.contains("Hello there"), "{:?}", m.body_text);
    }

    /// East Asian mail still often comes in legacy charsets: the body and
    /// an encoded-word subject are decoded, not garbled.
    #[test]
    fn legacy_cjk_charsets_are_decoded() {
        let cases: [(&str, &[u8], &str); 4] = [
            (
                "Shift_JIS",
                b"\x8b\xea\x8f\xee\x82\xaa\x82\xa0\x82\xe8\x82\xdc\x82\xb7",
                "苦情があります",
            ),
            ("GB2312", b"\xce\xd2\xd2\xaa\xcd\xb6\xcb\xdf", "我要投诉"),
            ("EUC-KR", b"\xba\xd2\xb8\xb8", "불만"),
            ("Big5", b"\xa9\xea\xab\xe8", "抱怨"),
        ];
        for (charset, body, text) in cases {
            let mut raw = format!(
                "From: a@example.net\r\nSubject: =?iso-2022-jp?B?GyRCNmw+cBsoQg==?=\r\nContent-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            )
            .into_bytes();
            raw.extend_from_slice(body);
            raw.extend_from_slice(b"\r\n");
            let m = parse(&raw).expect("parses");
            assert_eq!(m.body_text, text, "{charset}");
            assert_eq!(m.subject, "苦情", "{charset}");
        }
    }

    #[test]
    fn alternative_parts_are_not_doubled_and_mixed_text_parts_are_joined() {
        let raw = "From: a@example.net\n\
Content-Type: multipart/mixed; boundary=\"M\"\n\
\n\
--M\n\
Content-Type: multipart/alternative; boundary=\"A\"\n\
\n\
--A\n\
Content-Type: text/plain\n\
\n\
first part\n\
--A\n\
Content-Type: text/html\n\
\n\
<p>first part</p>\n\
--A--\n\
--M\n\
Content-Type: text/plain\n\
\n\
second part\n\
--M--\n";
        let m = parse(raw.as_bytes()).expect("parses");
        assert_eq!(m.body_text, "first part\n\nsecond part");
    }

    #[test]
    fn unreadable_input_is_an_error_not_a_panic() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
        assert!(parse(b"From nobody Tue Oct  1 10:00:00 2024\n").is_err());
        assert!(parse(b"\x00\x01\x02 not a mail").is_err());
    }

    #[test]
    fn an_obsolete_from_header_is_not_taken_for_an_mbox_line() {
        // RFC 5322 §4.5: obsolete syntax allows space before the colon.
        let m = parse(b"From : a@example.net\nSubject: hi\n\nbody\n").expect("parses");
        assert_eq!(m.subject, "hi");
        assert_eq!(m.headers[0].0, "from");
    }

    #[test]
    fn leading_blank_lines_are_skipped() {
        let m =
            parse(b"   \r\nFrom: a@example.net\r\nSubject: hi\r\n\r\nbody\r\n").expect("parses");
        assert_eq!(m.subject, "hi");
        assert_eq!(m.from_address(), "a@example.net");
    }

    #[test]
    fn bad_date_is_none() {
        let m = parse(b"From: a@example.net\nDate: someday soon\n\nx\n").expect("parses");
        assert_eq!(m.date, None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&raw);
        }

        #[test]
        fn mutated_messages_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..24),
            line_ending in 0u8..3,
        ) {
            let base = match line_ending {
                0 => PLAIN.to_string(),
                1 => PLAIN.replace("\r\n", "\n"),
                _ => PLAIN.replace("\r\n", "\r"),
            };
            let mut raw = base.into_bytes();
            for (at, byte, op) in edits {
                let i = at.index(raw.len().max(1));
                match op {
                    0 if i < raw.len() => raw[i] = byte,
                    1 => raw.insert(i.min(raw.len()), byte),
                    2 if i < raw.len() => { raw.remove(i); }
                    _ => {
                        // Splice in a fragment that stresses MIME parsing.
                        let frag: &[u8] = match byte % 6 {
                            0 => b"\nContent-Type: multipart/mixed; boundary=x\n\n--x\n",
                            1 => b"=?utf-8?b?////?=",
                            2 => b"\n--x--\n",
                            3 => b"\r\n\t",
                            4 => b"Content-Transfer-Encoding: base64\n",
                            _ => b"<>",
                        };
                        let at = i.min(raw.len());
                        raw.splice(at..at, frag.iter().copied());
                    }
                }
            }
            let _ = parse(&raw);
        }
    }
}
