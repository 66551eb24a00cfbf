//! Never answer a robot: is this mail from a person, or from a machine that
//! must not get an automatic letter back?
//!
//! [`classify`] looks only at the facts in an [`Inbound`] (headers, sender,
//! subject, MIME type) and returns a [`Classification`] whose reason names
//! the header or value that decided it, so QC can see why a mail got no
//! acknowledgement.
//!
//! Invariants:
//! - Pure: no I/O, no clock, no parser; the same mail always gets the same
//!   answer.
//! - Precedence is fixed: Loop, Bounce, AutoReply (responder headers),
//!   the null return path (an auto-reply when it shows a responder's
//!   signs, else a bounce), Precedence: bulk/junk with an auto-reply
//!   subject (an auto-reply), List, then the weak rules, then Human. The
//!   first rule that fires wins, so a bounce of a list post is a bounce and an
//!   auto-reply from our own address is a loop.
//! - Subject rules never fire on words inside a person's subject: a phrase
//!   counts only as the whole subject, as a leading tag followed by a colon
//!   ("Automatic reply: ...") or in brackets ("[Auto-Reply] ..."), possibly
//!   after one ticket tag ("[rt #12] AutoReply: ..."), or when it is a
//!   machine's wording no person writes ("Undelivered Mail Returned to
//!   Sender"). "Complaint about your out of office policy", "Re: Out of
//!   Office" and "Fwd: Undeliverable: ..." are human.
//! - A bare null return path (`<>`) is a bounce only when nothing says the
//!   mail is an auto-reply: RFC 3834 §3.3 asks auto-responders to use the
//!   null sender too. Stronger bounce evidence (multipart/report, a daemon
//!   sender, X-Failed-Recipients) wins over Auto-Submitted, which Postfix
//!   and Exchange also put on their bounces.
//! - Strong evidence wins over weak, whatever the order of the headers.
//!   Weak evidence is what a person's mail can show by chance: a subject
//!   phrase, X-Auto-Response-Suppress (some mail clients set it), an
//!   address that says not to reply. It counts only when nothing strong
//!   fired, and such mail is never dropped unseen
//!   ([`Classification::is_weak`]).

use crate::core::message::{message_id_domain, Inbound};
use crate::core::token;

/// Who we are, to recognise our own mail coming back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnIdentity {
    /// Lower case: the complaints address and the address our letters come
    /// from.
    pub addresses: Vec<String>,
    /// The domain of the Message-IDs we generate (see `core::token`). It is
    /// often the organisation's own mail domain, which staff mail clients
    /// use for their Message-IDs too; see `own_mail` for how the two are
    /// told apart.
    pub message_id_domain: String,
}

/// What kind of sender a mail came from. Everything but `Human` is a robot
/// and gets no automatic answer; the string is the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    Human,
    /// Our own mail came back to us (From or Message-ID is ours).
    Loop(String),
    /// A delivery status notification, non-delivery report or other
    /// machine report (RFC 3464, RFC 6522, RFC 5965).
    Bounce(String),
    /// An auto-responder or other automatically submitted mail (RFC 3834).
    AutoReply(String),
    /// Mailing-list or bulk mail (RFC 2369, RFC 2919).
    List(String),
}

impl Classification {
    /// Everything but a person.
    pub fn is_robot(&self) -> bool {
        !matches!(self, Classification::Human)
    }

    /// A stable name for logs, the store and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Classification::Human => "human",
            Classification::Loop(_) => "loop",
            Classification::Bounce(_) => "bounce",
            Classification::AutoReply(_) => "auto-reply",
            Classification::List(_) => "list",
        }
    }

    /// A robot judged on weak evidence only (a subject phrase,
    /// X-Auto-Response-Suppress, which some people's mail clients set, or a
    /// no-reply address): such mail must not be dropped without a person
    /// looking at it.
    pub fn is_weak(&self) -> bool {
        let r = self.reason();
        self.is_robot()
            && (r.starts_with("Subject:")
                || r.starts_with("X-Auto-Response-Suppress:")
                || r.starts_with(NO_REPLY))
    }

    /// The header or value that decided it ("" for a human).
    pub fn reason(&self) -> &str {
        match self {
            Classification::Human => "",
            Classification::Loop(r)
            | Classification::Bounce(r)
            | Classification::AutoReply(r)
            | Classification::List(r) => r,
        }
    }
}

/// Classifies one mail; see the module header for the rules' order.
pub fn classify(m: &Inbound, own: &OwnIdentity) -> Classification {
    strong(m, own)
        .or_else(|| weak(m))
        .unwrap_or(Classification::Human)
}

/// The rules a person's own mail does not meet (list mail may be a
/// person's post, but not to us as a complaint).
fn strong(m: &Inbound, own: &OwnIdentity) -> Option<Classification> {
    if let Some(reason) = own_mail(m, own) {
        return Some(Classification::Loop(reason));
    }
    if let Some(reason) = bounce(m) {
        return Some(Classification::Bounce(reason));
    }
    if let Some(reason) = responder_header(m, false) {
        return Some(Classification::AutoReply(reason));
    }
    if m.return_path.as_deref() == Some("") {
        // vacation(1) and its kin mark their replies with the null sender
        // and Precedence: bulk or junk; a mailing list never uses `<>`.
        if let Some(p) = bulk_precedence(m) {
            return Some(Classification::AutoReply(format!(
                "Precedence: {p} with Return-Path: <>"
            )));
        }
        // With the null sender, weak signs of a responder are enough to
        // call it an auto-reply rather than a bounce.
        if let Some(reason) = responder_header(m, true).or_else(|| auto_reply_subject(m)) {
            return Some(Classification::AutoReply(format!(
                "Return-Path: <> with {reason}"
            )));
        }
        // RFC 5321 §4.5.5: the null reverse-path is for notifications
        // (DSNs above all); a person's mail always has a return address.
        return Some(Classification::Bounce("Return-Path: <>".to_string()));
    }
    // Responders mark their replies Precedence: bulk or junk too: with an
    // auto-reply subject beside it, it is one, not list mail.
    if let (Some(p), Some(reason)) = (bulk_precedence(m), auto_reply_subject(m)) {
        return Some(Classification::AutoReply(format!(
            "Precedence: {p} with {reason}"
        )));
    }
    list(m).map(Classification::List)
}

/// The rules a person's mail can meet by chance: a machine's subject
/// phrase, X-Auto-Response-Suppress (which some mail clients set), or an
/// address that says not to reply. They
/// count only when no strong rule fired, and such mail is never dropped
/// unseen (see [`Classification::is_weak`]).
fn weak(m: &Inbound) -> Option<Classification> {
    if subject_match(&m.subject, &NDR_SUBJECTS) {
        return Some(Classification::Bounce(format!(
            "Subject: {}",
            m.subject.trim()
        )));
    }
    if let Some(reason) = responder_header(m, true) {
        return Some(Classification::AutoReply(reason));
    }
    if let Some(reason) = auto_reply_subject(m) {
        return Some(Classification::AutoReply(reason));
    }
    // A system's notification: nobody reads what goes back to it. A web
    // form that sends from no-reply@ with the person in Reply-To is human.
    let answer = m.reply_address();
    no_reply(answer).then(|| Classification::AutoReply(format!("{NO_REPLY}{answer}")))
}

/// `Precedence: bulk` or `junk`, as written: what vacation(1) and its kin
/// mark their replies with.
fn bulk_precedence(m: &Inbound) -> Option<&str> {
    m.header("precedence")
        .map(str::trim)
        .filter(|p| p.eq_ignore_ascii_case("bulk") || p.eq_ignore_ascii_case("junk"))
}

/// An out-of-office or auto-responder subject, as a reason.
fn auto_reply_subject(m: &Inbound) -> Option<String> {
    let by_subject =
        subject_match(&m.subject, &AUTO_REPLY_SUBJECTS) || lotus_out_of_office(&fold(&m.subject));
    by_subject.then(|| format!("Subject: {}", m.subject.trim()))
}

/// The reason's start for mail whose only address says not to reply.
const NO_REPLY: &str = "No-reply address: ";

/// Local parts that say nobody reads replies ("no-reply", "noreply-dmarc",
/// "do_not_reply+1234").
fn no_reply(address: &str) -> bool {
    const WORDS: &[&str] = &[
        "noreply",
        "no-reply",
        "no_reply",
        "no.reply",
        "donotreply",
        "do-not-reply",
        "do_not_reply",
        "do.not.reply",
    ];
    let Some((local, _)) = address.rsplit_once('@') else {
        return false;
    };
    let local = local.to_ascii_lowercase();
    WORDS.iter().any(|w| {
        local
            .strip_prefix(w)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', '.', '+']))
    })
}

fn own_mail(m: &Inbound, own: &OwnIdentity) -> Option<String> {
    let ours =
        |addr: &str| !addr.is_empty() && own.addresses.iter().any(|a| a.eq_ignore_ascii_case(addr));
    let from = m.from_address();
    if ours(from) {
        return Some(format!("From: {from} is our own address"));
    }
    // Only the mail's own Message-ID counts: a person replying to our
    // letter quotes our id in In-Reply-To/References, which is fine.
    if !m.message_id_synthetic && !own.message_id_domain.is_empty() {
        let domain = message_id_domain(&m.message_id);
        if domain.eq_ignore_ascii_case(&own.message_id_domain) {
            // Thunderbird, Apple Mail and Roundcube make a person's
            // Message-ID from the domain of their own address, so a staff
            // member writing from our domain has ids at it too. At our
            // domain, an id counts when it has the shape of the ones we
            // make, or when the sender is not at that domain at all.
            let ours_by_shape =
                token::parse_message_id(&m.message_id, &own.message_id_domain).is_some();
            let sender_domain = from.rsplit_once('@').map_or("", |(_, d)| d);
            if ours_by_shape || !sender_domain.eq_ignore_ascii_case(domain) {
                return Some(format!("Message-ID: <{}> is one of ours", m.message_id));
            }
        }
    }
    // procmail, Mailman and many responders stamp X-Loop with the address
    // that handled the mail; ours there means it has been through us.
    for (name, value) in &m.headers {
        if name == "x-loop" {
            let v = value.trim().trim_start_matches('<').trim_end_matches('>');
            if ours(v.trim()) {
                return Some(format!("X-Loop: {}", value.trim()));
            }
        }
    }
    None
}

/// Local parts that only mail systems send from (RFC 5321 §4.5.1 requires
/// `postmaster`; MAILER-DAEMON is the sendmail/Postfix/Exim convention).
const DAEMON_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "post_master",
    "post-master",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "postmaster",
    "double-bounce",
];

/// Display names mail systems sign non-delivery reports with.
const DAEMON_NAMES: &[&str] = &["mail delivery subsystem", "mail delivery system"];

/// Subject phrases, written case-folded and accent-folded (see [`fold`]).
/// A `tags` phrase matches as the whole subject, as a leading tag ended by
/// a colon ("Undeliverable: your letter"), or in brackets ("[Auto-Reply]
/// your letter"); a `prefixes` phrase matches at the start of the subject
/// and is kept for wording no person writes.
struct Phrases {
    tags: &'static [&'static str],
    prefixes: &'static [&'static str],
}

/// Non-delivery report subjects: Postfix, Exim, sendmail, qmail, Gmail,
/// Domino, and Exchange in several languages.
const NDR_SUBJECTS: Phrases = Phrases {
    tags: &[
        "undeliverable",
        "undeliverable mail",
        "undeliverable message",
        "undelivered mail",
        "undelivered message",
        "nondeliverable mail",
        "non-deliverable mail",
        "returned mail",
        "failure notice",
        "delivery failure",
        "delivery failed",
        "delivery has failed",
        "mail delivery failure",
        "mail could not be delivered",
        "message not delivered",
        "message could not be delivered",
        "unzustellbar",
        "non remis",
        "onbestelbaar",
        "non recapitabile",
        "no se puede entregar",
        "olevererbart",
        "nie mozna dostarczyc",
    ],
    prefixes: &[
        "undelivered mail returned to sender",
        "delivery status notification",
        "mail delivery failed",
        "warning: could not send message for past",
        "delayed mail (still being retried)",
        "delivery notification: delivery has failed",
        "mail system error - returned mail",
        "notification d'etat de remise",
        "message delivery failure",
    ],
};

/// Out-of-office and auto-responder subjects as Outlook/Exchange (in its
/// languages), Gmail, Lotus Notes, RT and common responders write them.
const AUTO_REPLY_SUBJECTS: Phrases = Phrases {
    tags: &[
        // English.
        "out of office",
        "out-of-office",
        "out of office autoreply",
        "out of office auto reply",
        "out of office reply",
        "out of the office",
        "i am out of the office",
        "i am out of office",
        "i'm out of the office",
        "i am away",
        "i'm away",
        "away from the office",
        "on vacation",
        "i am on vacation",
        "i'm on vacation",
        "vacation reply",
        "automatic reply",
        "automatic response",
        "automated reply",
        "automated response",
        "auto reply",
        "auto-reply",
        "autoreply",
        "auto response",
        "auto-response",
        "autoresponse",
        // Outlook's "Automatic reply" and out-of-office wording elsewhere.
        "automatische antwort",
        "abwesenheitsnotiz",
        "abwesend",
        "ausser haus",
        "nicht im buro",
        "reponse automatique",
        "absence",
        "absent du bureau",
        "absence du bureau",
        "respuesta automatica",
        "fuera de la oficina",
        "fuera de oficina",
        "risposta automatica",
        "fuori ufficio",
        "fuori sede",
        "resposta automatica",
        "fora do escritorio",
        "ausente do escritorio",
        "automatisch antwoord",
        "afwezig",
        "afwezigheid",
        "automatiskt svar",
        "automatisk svar",
        "autosvar",
        "franvaro",
        "automaattinen vastaus",
        "automatyczna odpowiedz",
        "poza biurem",
        "automaticka odpoved",
        "automatikus valasz",
        "raspuns automat",
        "automatski odgovor",
        "samodejni odgovor",
        "automatiska atbilde",
        "arpus biroja atrasanas automatiska atbilde",
        "automatinis atsakymas",
        "automaatvastus",
        "otomatik yanit",
        "αυτοματη απαντηση",
        "автоматический ответ",
        "автоматична відповідь",
        "автоматичен отговор",
        "自动回复",
        "自動回覆",
        "自動応答",
        "自動返信",
        "不在办公室",
        "자동 회신",
        "자동 응답",
        "תשובה אוטומטית",
        "رد تلقائي",
    ],
    prefixes: &[
        "out of office until",
        "out of the office until",
        "reponse automatique d'absence",
    ],
};

fn bounce(m: &Inbound) -> Option<String> {
    // RFC 6522: multipart/report carries machine reports: delivery status
    // (RFC 3464), abuse feedback (RFC 5965), read receipts (RFC 8098).
    if m.content_type == "multipart/report" {
        return Some(match &m.report_type {
            Some(t) => format!("Content-Type: multipart/report; report-type={t}"),
            None => "Content-Type: multipart/report".to_string(),
        });
    }
    const REPORT_TYPES: &[&str] = &[
        "message/delivery-status",
        "message/global-delivery-status",
        "message/feedback-report",
    ];
    // The returned header block of a report, as the whole mail: nothing
    // else sends it (as a part, a person may forward it).
    const HEADER_BLOCKS: &[&str] = &["text/rfc822-headers", "message/global-headers"];
    if REPORT_TYPES.contains(&m.content_type.as_str())
        || HEADER_BLOCKS.contains(&m.content_type.as_str())
    {
        return Some(format!("Content-Type: {}", m.content_type));
    }
    if let Some(a) = m
        .attachments
        .iter()
        .find(|a| REPORT_TYPES.contains(&a.content_type.as_str()))
    {
        return Some(format!("a {} part", a.content_type));
    }
    if let Some(v) = m.header("x-failed-recipients") {
        // Exim (and others) name the failed addresses here.
        return Some(format!("X-Failed-Recipients: {}", v.trim()));
    }
    if m.has_header("x-ms-exchange-message-is-ndr") {
        return Some("X-MS-Exchange-Message-Is-Ndr".to_string());
    }
    if let Some(from) = &m.from {
        let local = from
            .address
            .rsplit_once('@')
            .map_or(from.address.as_str(), |(l, _)| l);
        if DAEMON_LOCAL_PARTS
            .iter()
            .any(|d| local.eq_ignore_ascii_case(d))
        {
            return Some(format!("From: {}", from.address));
        }
        // `From: MAILER-DAEMON` with no domain parses as a bare name.
        let name = from.name.trim().to_lowercase();
        if DAEMON_NAMES.contains(&name.as_str()) || DAEMON_LOCAL_PARTS.contains(&name.as_str()) {
            return Some(if from.address.is_empty() {
                format!("From: {}", from.name.trim())
            } else {
                format!("From: {} <{}>", from.name.trim(), from.address)
            });
        }
    }
    None
}

/// The first header that marks automatic submission: the weak
/// X-Auto-Response-Suppress only when `weak`, every other one only when not.
fn responder_header(m: &Inbound, weak: bool) -> Option<String> {
    for (name, value) in &m.headers {
        if (name == "x-auto-response-suppress") != weak {
            continue;
        }
        let value = value.trim();
        let token = value
            .split(';')
            .next()
            .unwrap_or("")
            .split('(')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let decided = match name.as_str() {
            // RFC 3834 §5: any value but "no" marks automatic submission.
            "auto-submitted" => token != "no",
            // Responders that predate RFC 3834 (vacation, procmail,
            // cPanel, Zimbra, GroupWise...).
            "x-autoreply" | "x-autorespond" | "x-autoresponder" | "x-autoreply-from"
            | "x-mail-autoreply" | "x-autogenerated" => {
                !matches!(token.as_str(), "no" | "false" | "0")
            }
            // Exchange/Outlook set this on mail they generate (OOF replies,
            // notices) to stop other responders answering it.
            "x-auto-response-suppress" => true,
            // The de-facto (never standardised) Precedence header.
            "precedence" => token == "auto_reply",
            _ => false,
        };
        if decided {
            return Some(
                format!("{}: {value}", header_label(name))
                    .trim_end()
                    .to_string(),
            );
        }
    }
    None
}

/// Lotus Notes: "Jo Bloggs is out of the office." or "AUTO: Jo Bloggs is
/// out of the office (returning 05/01/2024)". A person's "My tutor is out
/// of the office again" has neither the full stop nor the AUTO tag.
fn lotus_out_of_office(subject: &str) -> bool {
    let phrase = "is out of the office";
    (subject.starts_with("auto:") && subject.contains(phrase))
        || subject.ends_with(&format!("{phrase}."))
        || subject.contains(&format!("{phrase} (returning"))
}

fn list(m: &Inbound) -> Option<String> {
    for (name, value) in &m.headers {
        let decided = match name.as_str() {
            // RFC 2919 List-Id and the RFC 2369 List-* fields.
            "list-id" | "list-unsubscribe" | "list-post" | "list-help" | "list-subscribe"
            | "list-owner" | "list-archive" => true,
            // ezmlm, Mailman, fml, SmartList and friends.
            "mailing-list" | "x-mailing-list" | "x-mailman-version" | "x-beenthere"
            | "x-ml-name" | "x-list" => true,
            "precedence" => {
                let v = value.trim().to_ascii_lowercase();
                matches!(v.as_str(), "bulk" | "junk" | "list")
            }
            _ => false,
        };
        if decided {
            return Some(format!("{}: {}", header_label(name), value.trim()));
        }
    }
    None
}

/// Lower-cases, strips accents from Latin and Greek letters and collapses
/// white space, so "Réponse  automatique" and an old 7-bit
/// "Reponse automatique" compare alike.
fn fold(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for word in lower.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            match c {
                'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => out.push('a'),
                'ç' | 'ć' | 'č' => out.push('c'),
                'ď' | 'đ' => out.push('d'),
                'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => out.push('e'),
                'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => out.push('i'),
                'ł' | 'ľ' | 'ĺ' | 'ļ' => out.push('l'),
                'ñ' | 'ń' | 'ň' | 'ņ' => out.push('n'),
                'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
                'ŕ' | 'ř' => out.push('r'),
                'ś' | 'š' | 'ş' | 'ș' => out.push('s'),
                'ß' => out.push_str("ss"),
                'ť' | 'ţ' | 'ț' => out.push('t'),
                'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => out.push('u'),
                'ý' | 'ÿ' => out.push('y'),
                'ź' | 'ż' | 'ž' => out.push('z'),
                'ģ' => out.push('g'),
                'ķ' => out.push('k'),
                'ά' => out.push('α'),
                'έ' => out.push('ε'),
                'ή' => out.push('η'),
                'ί' | 'ϊ' | 'ΐ' => out.push('ι'),
                'ό' => out.push('ο'),
                'ύ' | 'ϋ' | 'ΰ' => out.push('υ'),
                'ώ' => out.push('ω'),
                '：' => out.push(':'),
                _ => out.push(c),
            }
        }
    }
    out
}

/// Whether the subject carries one of the phrases (see [`Phrases`]).
fn subject_match(subject: &str, phrases: &Phrases) -> bool {
    let s = fold(subject);
    if s.is_empty() {
        return false;
    }
    // "[Auto-Reply] your letter", "(Automatic reply) ...".
    let bracketed = s
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .or_else(|| s.strip_prefix('(').and_then(|r| r.split_once(')')))
        .map(|(inside, _)| inside.trim());
    if bracketed.is_some_and(|inside| phrases.tags.contains(&inside)) {
        return true;
    }
    // Ticket systems put their tag first: "[rt.example #123] AutoReply: ...".
    let after_tag = s
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(_, rest)| rest.trim_start());
    leads_with(&s, phrases) || after_tag.is_some_and(|rest| leads_with(rest, phrases))
}

fn leads_with(s: &str, phrases: &Phrases) -> bool {
    phrases.prefixes.iter().any(|p| s.starts_with(p))
        || phrases.tags.iter().any(|tag| {
            let Some(rest) = s.strip_prefix(tag) else {
                return false;
            };
            // Whole subject (trailing punctuation aside), or a tag ended by
            // a colon (French puts a space before it).
            let rest = rest.trim_start();
            rest.starts_with(':') || rest.chars().all(|c| matches!(c, '.' | '!' | ' '))
        })
}

/// A lower-case header name in its usual spelling, for reasons.
fn header_label(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{Attachment, Mailbox};

    fn own() -> OwnIdentity {
        OwnIdentity {
            addresses: vec![
                "complaints@opp.example".to_string(),
                "desk@opp.example".to_string(),
            ],
            message_id_domain: "opp.example".to_string(),
        }
    }

    /// A plain personal mail, as a complainant sends it.
    fn person() -> Inbound {
        Inbound {
            message_id: "CAF1234@mail.gmail.com".to_string(),
            from: Some(Mailbox {
                name: "Jo Bloggs".to_string(),
                address: "jo@example.net".to_string(),
            }),
            to: vec![Mailbox {
                name: String::new(),
                address: "complaints@opp.example".to_string(),
            }],
            return_path: Some("jo@example.net".to_string()),
            subject: "My course certificate".to_string(),
            content_type: "text/plain".to_string(),
            headers: vec![
                ("from".to_string(), "Jo Bloggs <jo@example.net>".to_string()),
                ("subject".to_string(), "My course certificate".to_string()),
            ],
            body_text: "Hello, I never got my certificate.".to_string(),
            ..Inbound::default()
        }
    }

    fn with_header(name: &str, value: &str) -> Inbound {
        let mut m = person();
        m.headers.push((name.to_string(), value.to_string()));
        m
    }

    fn with_subject(subject: &str) -> Inbound {
        let mut m = person();
        m.subject = subject.to_string();
        m
    }

    fn with_from(address: &str, name: &str) -> Inbound {
        let mut m = person();
        m.from = Some(Mailbox {
            name: name.to_string(),
            address: address.to_string(),
        });
        m
    }

    fn kind(m: &Inbound) -> &'static str {
        classify(m, &own()).as_str()
    }

    #[test]
    fn a_person_is_human() {
        let c = classify(&person(), &own());
        assert_eq!(c, Classification::Human);
        assert!(!c.is_robot());
        assert_eq!(c.reason(), "");
    }

    #[test]
    fn our_own_from_or_message_id_is_a_loop() {
        let c = classify(&with_from("Complaints@OPP.example", ""), &own());
        assert_eq!(c.as_str(), "loop");
        assert!(c.is_robot());
        assert!(
            c.reason().to_lowercase().contains("complaints@opp.example"),
            "{c:?}"
        );
        assert_eq!(kind(&with_from("desk@opp.example", "Desk")), "loop");

        let mut m = person();
        m.message_id = "case-42.ack.abc@opp.example".to_string();
        let c = classify(&m, &own());
        assert_eq!(c.as_str(), "loop");
        assert!(c.reason().starts_with("Message-ID"), "{c:?}");

        // One of our own ids (core::token's shape) is ours whoever the
        // From says it is from.
        let mut m = with_from("jane@opp.example", "Jane");
        m.message_id = token::message_id(
            7,
            "OPP-2026-0001",
            &token::token(b"k", "OPP-2026-0001", "x"),
            "opp.example",
        );
        assert_eq!(kind(&m), "loop");

        assert_eq!(
            kind(&with_header("x-loop", "complaints@opp.example")),
            "loop"
        );
    }

    #[test]
    fn a_reply_to_our_letter_is_not_a_loop() {
        let mut m = person();
        m.in_reply_to = vec!["case-42.ack.abc@opp.example".to_string()];
        m.references = vec!["case-42.ack.abc@opp.example".to_string()];
        m.subject = "Re: Your complaint OPP-2024-0042".to_string();
        assert_eq!(kind(&m), "human");
    }

    #[test]
    fn near_misses_of_our_identity_are_human() {
        // Another mailbox at our domain (a staff member) is not us, even
        // when their mail client makes Message-IDs at our domain
        // (Thunderbird, Apple Mail).
        assert_eq!(kind(&with_from("jane@opp.example", "Jane")), "human");
        let mut m = with_from("jane@opp.example", "Jane");
        m.message_id = "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab@opp.example".to_string();
        assert_eq!(kind(&m), "human");
        // A Message-ID whose domain merely ends with ours.
        let mut m = person();
        m.message_id = "x@notopp.example".to_string();
        assert_eq!(kind(&m), "human");
        // A synthetic id never counts.
        let mut m = person();
        m.message_id = "abc@opp.example".to_string();
        m.message_id_synthetic = true;
        assert_eq!(kind(&m), "human");
        // An X-Loop naming someone else.
        assert_eq!(
            kind(&with_header("x-loop", "owner@bugs.debian.org")),
            "human"
        );
    }

    #[test]
    fn loop_wins_over_everything() {
        let mut m = with_from("complaints@opp.example", "");
        m.headers
            .push(("auto-submitted".to_string(), "auto-replied".to_string()));
        m.content_type = "multipart/report".to_string();
        assert_eq!(kind(&m), "loop");
    }

    #[test]
    fn multipart_report_of_any_type_is_a_bounce() {
        for t in [
            "delivery-status",
            "feedback-report",
            "disposition-notification",
        ] {
            let mut m = person();
            m.content_type = "multipart/report".to_string();
            m.report_type = Some(t.to_string());
            let c = classify(&m, &own());
            assert_eq!(c.as_str(), "bounce");
            assert_eq!(
                c.reason(),
                format!("Content-Type: multipart/report; report-type={t}")
            );
        }
        let mut m = person();
        m.content_type = "multipart/report".to_string();
        assert_eq!(kind(&m), "bounce");
    }

    #[test]
    fn a_delivery_status_part_or_top_level_type_is_a_bounce() {
        let mut m = person();
        m.content_type = "multipart/mixed".to_string();
        m.attachments.push(Attachment {
            filename: String::new(),
            content_type: "message/delivery-status".to_string(),
            size: 200,
        });
        assert_eq!(kind(&m), "bounce");
        let mut m = person();
        m.content_type = "message/delivery-status".to_string();
        assert_eq!(kind(&m), "bounce");
        // An ordinary attachment is not.
        let mut m = person();
        m.attachments.push(Attachment {
            filename: "letter.pdf".to_string(),
            content_type: "application/pdf".to_string(),
            size: 200,
        });
        assert_eq!(kind(&m), "human");
    }

    #[test]
    fn daemon_senders_are_bounces() {
        for a in [
            "MAILER-DAEMON@mx.example.org",
            "mailer-daemon@googlemail.com",
            "postmaster@example.org",
            "Postmaster@Example.org",
            "mailer-daemon",
        ] {
            let c = classify(&with_from(&a.to_lowercase(), ""), &own());
            assert_eq!(c.as_str(), "bounce", "{a}");
            assert!(c.reason().starts_with("From: "), "{c:?}");
        }
        assert_eq!(
            kind(&with_from("bounces@mx.example", "Mail Delivery System")),
            "bounce"
        );
        // `From: MAILER-DAEMON` (no domain) parses as a bare name.
        assert_eq!(kind(&with_from("", "MAILER-DAEMON")), "bounce");
    }

    #[test]
    fn addresses_that_only_contain_daemon_words_are_human() {
        assert_eq!(
            kind(&with_from("postmaster.jones@example.org", "")),
            "human"
        );
        assert_eq!(kind(&with_from("jo@postmaster.example", "")), "human");
        assert_eq!(
            kind(&with_from("jo@example.org", "The Postmaster")),
            "human"
        );
    }

    #[test]
    fn failed_recipients_and_exchange_ndr_headers_are_bounces() {
        let c = classify(&with_header("x-failed-recipients", "x@example.org"), &own());
        assert_eq!(c.reason(), "X-Failed-Recipients: x@example.org");
        assert_eq!(
            kind(&with_header("x-ms-exchange-message-is-ndr", "")),
            "bounce"
        );
    }

    #[test]
    fn ndr_subjects_are_bounces() {
        for s in [
            "Undelivered Mail Returned to Sender",
            "Delivery Status Notification (Failure)",
            "Delivery Status Notification (Delay)",
            "Undeliverable: Your complaint OPP-2024-0042",
            "Undeliverable",
            "Mail delivery failed: returning message to sender",
            "failure notice",
            "Returned mail: see transcript for details",
            "Returned mail: User unknown",
            "DELIVERY FAILURE: User jo not listed in Domino Directory",
            "Delivery Failure",
            "Unzustellbar: Ihre Beschwerde",
            "Non remis : Votre réclamation",
            "Warning: could not send message for past 4 hours",
            "  Undelivered   Mail Returned to Sender ",
        ] {
            let c = classify(&with_subject(s), &own());
            assert_eq!(c.as_str(), "bounce", "{s}");
            assert_eq!(c.reason(), format!("Subject: {}", s.trim()));
        }
    }

    #[test]
    fn subjects_that_only_mention_delivery_are_human() {
        for s in [
            "Delivery failure of my certificate",
            "Undeliverable parcel - complaint",
            "Complaint: undeliverable mail from your office",
            "Re: Undeliverable: my earlier mail",
            "Failure notice from the college about my exam",
            "Fwd: Delivery Status Notification (Failure)",
            "Returned mail box key",
            "Why was my delivery failed?",
        ] {
            assert_eq!(kind(&with_subject(s)), "human", "{s}");
        }
    }

    #[test]
    fn null_return_path_is_a_bounce_unless_it_says_auto_reply() {
        let mut m = person();
        m.return_path = Some(String::new());
        let c = classify(&m, &own());
        assert_eq!(c, Classification::Bounce("Return-Path: <>".to_string()));

        // RFC 3834 §3.3: responders use the null sender too.
        m.headers
            .push(("auto-submitted".to_string(), "auto-replied".to_string()));
        assert_eq!(kind(&m), "auto-reply");
        let mut m = with_subject("Automatic reply: Your complaint");
        m.return_path = Some(String::new());
        assert_eq!(kind(&m), "auto-reply");
    }

    #[test]
    fn bounce_wins_over_auto_submitted() {
        // Postfix and Exchange NDRs carry Auto-Submitted: auto-replied.
        let mut m = with_from("mailer-daemon@mx.example", "Mail Delivery System");
        m.headers
            .push(("auto-submitted".to_string(), "auto-replied".to_string()));
        assert_eq!(kind(&m), "bounce");
    }

    #[test]
    fn auto_submitted_other_than_no_is_an_auto_reply() {
        for v in [
            "auto-replied",
            "Auto-Replied",
            "auto-generated",
            "auto-generated (failure)",
            "auto-notified; owner-email=\"x@example.org\"",
            "",
        ] {
            let c = classify(&with_header("auto-submitted", v), &own());
            assert_eq!(c.as_str(), "auto-reply", "{v:?}");
            assert_eq!(c.reason(), format!("Auto-Submitted: {v}").trim_end());
        }
        for v in ["no", "No", " no ", "no; comment", "no (by a person)"] {
            assert_eq!(kind(&with_header("auto-submitted", v)), "human", "{v:?}");
        }
    }

    #[test]
    fn responder_headers_are_auto_replies() {
        for (h, v) in [
            ("x-autoreply", "yes"),
            ("x-autorespond", "Out of office"),
            ("x-auto-response-suppress", "All"),
            ("x-auto-response-suppress", "OOF, AutoReply"),
            ("precedence", "auto_reply"),
            ("precedence", "Auto_Reply"),
        ] {
            assert_eq!(kind(&with_header(h, v)), "auto-reply", "{h}: {v}");
        }
        let c = classify(&with_header("x-autoreply", "yes"), &own());
        assert_eq!(c.reason(), "X-Autoreply: yes");
        assert_eq!(kind(&with_header("x-autoreply", "no")), "human");
    }

    #[test]
    fn out_of_office_subjects_are_auto_replies() {
        for s in [
            "Out of Office",
            "Out of Office: Your complaint OPP-2024-0042",
            "Out of Office AutoReply: Your complaint",
            "Out of the office until Monday",
            "Automatic reply: Re: Your complaint",
            "Auto-Reply: Your complaint",
            "AutoReply",
            "Auto Response",
            "Abwesenheitsnotiz: Ihre Beschwerde",
            "Automatische Antwort: Ihre Beschwerde",
            "Réponse automatique : Votre réclamation",
            "Réponse automatique d'absence du bureau",
            "Absence",
            "Absence : Votre réclamation",
            "On vacation",
            "I am away",
            "I am out of the office",
            "Risposta automatica: Reclamo",
            "Respuesta automática: Su queja",
            "Fuera de la oficina",
            "Automatisch antwoord: Uw klacht",
            "自动回复：您的投诉",
            "Jo Bloggs is out of the office.",
            "AUTO: Jo Bloggs is out of the office (returning 05/01/2024)",
        ] {
            let c = classify(&with_subject(s), &own());
            assert_eq!(c.as_str(), "auto-reply", "{s}");
            assert_eq!(c.reason(), format!("Subject: {s}"));
        }
    }

    #[test]
    fn phrases_are_written_folded() {
        for p in [&NDR_SUBJECTS, &AUTO_REPLY_SUBJECTS] {
            for phrase in p.tags.iter().chain(p.prefixes) {
                assert_eq!(fold(phrase), *phrase);
            }
        }
    }

    #[test]
    fn bracketed_and_ticket_tagged_auto_reply_subjects() {
        for s in [
            "[Auto-Reply] Your complaint",
            "[Automatyczna odpowiedź] test",
            "(Automatic reply) Your complaint",
            "[rt.example.org #33575] AutoReply: Your complaint",
            "[Ticket#123] Automatic reply: Your complaint",
            "Ārpus biroja atrašanās automātiskā atbilde: Jūsu sūdzība",
            "Arpus biroja atrasanas automatiska atbilde: subjecting",
            "Automatická odpověď: Stížnost",
        ] {
            assert_eq!(kind(&with_subject(s)), "auto-reply", "{s}");
        }
        for s in [
            "[Complaint] Out of office hours support",
            "[Complaint] Re: Out of Office",
            "[Auto-Reply issue] your system",
            "[urgent] absence of my tutor",
        ] {
            assert_eq!(kind(&with_subject(s)), "human", "{s}");
        }
    }

    #[test]
    fn null_sender_with_bulk_precedence_is_an_auto_reply() {
        // The vacation(1) style: Return-Path <>, Precedence: bulk.
        let mut m = with_subject("Thank you for your e-mail");
        m.return_path = Some(String::new());
        m.headers
            .push(("precedence".to_string(), "bulk".to_string()));
        let c = classify(&m, &own());
        assert_eq!(c.as_str(), "auto-reply");
        assert_eq!(c.reason(), "Precedence: bulk with Return-Path: <>");
        // Without the null sender it is bulk (list) mail.
        m.return_path = Some("news@example.org".to_string());
        assert_eq!(kind(&m), "list");
    }

    #[test]
    fn subjects_that_only_mention_absence_are_human() {
        for s in [
            "Complaint about your out of office policy",
            "Out of office hours support was rude",
            "Re: Out of Office",
            "Fwd: Automatic reply: Your complaint",
            "Automatic reply from your system is wrong",
            "Absence policy complaint",
            "Absences not recorded properly",
            "My tutor is out of the office every Friday",
            "The manager is out of the office again",
            "I am away from home, please phone me",
            "On vacation my booking was cancelled",
            "Why did I get an autoreply?",
            "Your auto-reply said 5 days",
            "Reply",
            "",
        ] {
            assert_eq!(kind(&with_subject(s)), "human", "{s}");
        }
    }

    #[test]
    fn list_headers_are_lists() {
        for (h, v) in [
            ("list-id", "<notmuch.notmuchmail.org>"),
            ("list-unsubscribe", "<mailto:leave@lists.example>"),
            ("list-post", "<mailto:list@lists.example>"),
            (
                "mailing-list",
                "contact list-help@example.org; run by ezmlm",
            ),
            ("x-mailman-version", "2.1.9"),
            ("precedence", "bulk"),
            ("precedence", "junk"),
            ("precedence", "List"),
        ] {
            let c = classify(&with_header(h, v), &own());
            assert_eq!(c.as_str(), "list", "{h}: {v}");
            assert!(c.reason().ends_with(v), "{c:?}");
        }
        let c = classify(&with_header("list-id", "<a.lists.example>"), &own());
        assert_eq!(c.reason(), "List-Id: <a.lists.example>");
        for v in ["normal", "first-class", "urgent"] {
            assert_eq!(kind(&with_header("precedence", v)), "human", "{v}");
        }
    }

    #[test]
    fn auto_reply_wins_over_list_and_bounce_over_list() {
        let mut m = with_header("list-id", "<a.lists.example>");
        m.headers
            .push(("auto-submitted".to_string(), "auto-replied".to_string()));
        assert_eq!(kind(&m), "auto-reply");
        let mut m = with_header("list-id", "<a.lists.example>");
        m.content_type = "multipart/report".to_string();
        assert_eq!(kind(&m), "bounce");
    }

    #[test]
    fn mail_with_no_sender_at_all_is_still_classified() {
        let m = Inbound::default();
        assert_eq!(kind(&m), "human");
    }

    #[test]
    fn strong_evidence_wins_over_weak_whatever_the_header_order() {
        // Exchange's out-of-office reply: X-Auto-Response-Suppress first.
        let mut m = with_header("x-auto-response-suppress", "All");
        m.headers
            .push(("auto-submitted".to_string(), "auto-generated".to_string()));
        let c = classify(&m, &own());
        assert_eq!(c.reason(), "Auto-Submitted: auto-generated");
        assert!(!c.is_weak());

        // A list post from an Outlook user is list mail, not a doubtful
        // auto-reply.
        let mut m = with_header("x-auto-response-suppress", "All");
        m.headers
            .push(("list-id".to_string(), "<a.lists.example>".to_string()));
        assert_eq!(kind(&m), "list");

        // An NDR subject is weak; the Auto-Submitted beside it is not.
        let mut m = with_subject("Undeliverable: your letter");
        assert!(classify(&m, &own()).is_weak());
        m.headers
            .push(("auto-submitted".to_string(), "auto-replied".to_string()));
        let c = classify(&m, &own());
        assert_eq!(c.as_str(), "auto-reply");
        assert!(!c.is_weak());

        // Weak signs with the null sender: an auto-reply, judged strongly.
        let mut m = with_header("x-auto-response-suppress", "OOF");
        m.return_path = Some(String::new());
        let c = classify(&m, &own());
        assert_eq!(c.as_str(), "auto-reply");
        assert!(!c.is_weak(), "{c:?}");

        // A responder's Precedence: junk with its subject: an auto-reply.
        let mut m = with_subject("[Automatyczna odpowiedź] test");
        m.headers
            .push(("precedence".to_string(), "junk".to_string()));
        let c = classify(&m, &own());
        assert_eq!(c.as_str(), "auto-reply");
        assert!(!c.is_weak(), "{c:?}");
        m.subject = "test".to_string();
        assert_eq!(kind(&m), "list");
    }

    #[test]
    fn no_reply_senders_are_weak_robots_unless_reply_to_names_a_person() {
        for address in [
            "noreply@shop.example",
            "no-reply@x0000.dion.ne.jp",
            "No_Reply@bank.example",
            "noreply-dmarc-support@google.example",
            "do-not-reply+4711@forms.example",
            "DoNotReply@council.example",
        ] {
            let c = classify(&with_from(address, "Notifications"), &own());
            assert_eq!(c.as_str(), "auto-reply", "{address}");
            assert!(c.is_weak(), "{address}");
            assert!(c.reason().contains(address), "{c:?}");
        }
        for address in [
            "noreen@example.net",
            "noreplyguy@example.net",
            "reply@example.net",
            "jo.noreply.smith@example.net",
        ] {
            assert_eq!(kind(&with_from(address, "Someone")), "human", "{address}");
        }
        // A web form sends from no-reply@ and puts the person in Reply-To.
        let mut m = with_from("no-reply@forms.example", "Website");
        m.reply_to = Some(Mailbox {
            name: "Jo Bloggs".to_string(),
            address: "jo@example.net".to_string(),
        });
        assert_eq!(kind(&m), "human");
        // Unless Reply-To says the same.
        m.reply_to = Some(Mailbox {
            name: String::new(),
            address: "noreply@forms.example".to_string(),
        });
        assert!(classify(&m, &own()).is_weak());
    }

    #[test]
    fn returned_header_blocks_and_post_master_are_bounces() {
        let mut m = person();
        m.content_type = "text/rfc822-headers".to_string();
        assert_eq!(kind(&m), "bounce");
        // A person forwarding the header block they got is a person.
        let mut m = person();
        m.attachments.push(Attachment {
            filename: String::new(),
            content_type: "text/rfc822-headers".to_string(),
            size: 900,
        });
        assert_eq!(kind(&m), "human");
        assert_eq!(kind(&with_from("post_master@vtext.example", "")), "bounce");
    }
}
