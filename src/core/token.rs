//! Keyed tokens that bind a case to a recipient.
//!
//! Every mail redress sends carries a Message-ID with a token: an HMAC-SHA256
//! (secret known only to this desk) of the case reference and the recipient's
//! address. Mail clients echo the Message-ID in In-Reply-To/References, so a
//! reply proves the sender was sent that mail: a forged From: alone cannot
//! produce it. Pure: the secret is a parameter.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hex characters of the MAC kept in a Message-ID (80 bits).
const TOKEN_LEN: usize = 20;

/// The token binding `reference` and `recipient` (address compared case-
/// insensitively).
pub fn token(secret: &[u8], reference: &str, recipient: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm is unreachable.
        Err(_) => return String::new(),
    };
    mac.update(reference.as_bytes());
    mac.update(b"\0");
    mac.update(recipient.trim().to_ascii_lowercase().as_bytes());
    let full = hex::encode(mac.finalize().into_bytes());
    full[..TOKEN_LEN].to_string()
}

/// Whether `candidate` is the token for `reference` and `recipient`
/// (constant-time comparison).
pub fn verify(secret: &[u8], reference: &str, recipient: &str, candidate: &str) -> bool {
    let expected = token(secret, reference, recipient);
    expected.len() == candidate.len()
        && expected
            .bytes()
            .zip(candidate.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
            == 0
}

/// The reference that stands for the desk in tokens of mail about no case
/// (a quarantined mail, a failing mailbox login). Case references are
/// capitals, so it is never one.
pub const DESK: &str = "desk";

/// The Message-ID of outbox row `row` for a case: `r<row>.<reference>.<token>@<domain>`.
pub fn message_id(row: i64, reference: &str, token: &str, domain: &str) -> String {
    format!("r{row}.{reference}.{token}@{domain}")
}

/// The Message-ID of a notice that must go once, fixed by its `key`
/// (a name, a dot and a number: "quarantine.42"):
/// `<key>.<reference>.<token>@<domain>`.
pub fn notice_message_id(key: &str, reference: &str, token: &str, domain: &str) -> String {
    debug_assert!(is_notice_key(key), "notice key {key:?}");
    format!("{key}.{reference}.{token}@{domain}")
}

/// Reads a Message-ID made by [`message_id`] or [`notice_message_id`]:
/// (reference, token).
pub fn parse_message_id<'a>(id: &'a str, domain: &str) -> Option<(&'a str, &'a str)> {
    let (local, d) = id.rsplit_once('@')?;
    if !d.eq_ignore_ascii_case(domain) {
        return None;
    }
    // Neither references nor tokens hold a dot; a notice's key does.
    let mut parts = local.rsplitn(3, '.');
    let token = parts.next()?;
    let reference = parts.next()?;
    let head = parts.next()?;
    let row = head
        .strip_prefix('r')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    let token_shape = token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    (token_shape && !reference.is_empty() && (row || is_notice_key(head)))
        .then_some((reference, token))
}

/// Whether `id` was made by [`notice_message_id`].
pub fn is_notice_message_id(id: &str) -> bool {
    let local = id.rsplit_once('@').map_or(id, |(l, _)| l);
    local.rsplitn(3, '.').nth(2).is_some_and(is_notice_key)
}

/// "quarantine.42": lower-case letters, digits and dashes, a dot, digits.
fn is_notice_key(key: &str) -> bool {
    key.split_once('.').is_some_and(|(name, n)| {
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !n.is_empty()
            && n.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The Reply-To that carries a case and a token after a `+`:
/// `complaints+OPP-2026-0042.<token>@example.org`.
pub fn plus_address(complaints_address: &str, reference: &str, token: &str) -> String {
    match complaints_address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{reference}.{token}@{domain}"),
        None => complaints_address.to_string(),
    }
}

/// Reads an address made by [`plus_address`] for `complaints_address`:
/// (reference, token).
pub fn parse_plus_address<'a>(
    address: &'a str,
    complaints_address: &str,
) -> Option<(&'a str, &'a str)> {
    plus_tag(address, complaints_address)?.rsplit_once('.')
}

/// What follows the `+` of a plus-address of `complaints_address`
/// ("OPP-2026-0042" in `complaints+OPP-2026-0042@...`). Local parts and
/// domains compare without regard to case, as mail systems do.
pub fn plus_tag<'a>(address: &'a str, complaints_address: &str) -> Option<&'a str> {
    let (local, domain) = complaints_address.rsplit_once('@')?;
    let (al, ad) = address.rsplit_once('@')?;
    if !ad.eq_ignore_ascii_case(domain) {
        return None;
    }
    al.get(..local.len())
        .filter(|l| l.eq_ignore_ascii_case(local))
        .and_then(|_| al.get(local.len()..))?
        .strip_prefix('+')
}

/// Every (reference, token) a reply carries: in the Message-IDs it answers
/// (In-Reply-To, References) and in plus-addresses among its recipients.
/// References come back in their own spelling: mail systems may lower-case
/// an address (the parser does), and case references are capitals.
pub fn carried<'a>(
    message_ids: impl IntoIterator<Item = &'a str>,
    recipients: impl IntoIterator<Item = &'a str>,
    domain: &str,
    complaints_address: &str,
) -> Vec<(String, &'a str)> {
    let mut out: Vec<(String, &str)> = Vec::new();
    let found = message_ids
        .into_iter()
        .filter_map(|id| parse_message_id(id.trim_matches(['<', '>']), domain))
        .chain(
            recipients
                .into_iter()
                .filter_map(|a| parse_plus_address(a, complaints_address)),
        );
    for (reference, t) in found {
        let reference = if reference.eq_ignore_ascii_case(DESK) {
            DESK.to_string()
        } else {
            reference.to_ascii_uppercase()
        };
        let pair = (reference, t);
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_case_and_recipient() {
        let s = b"secret";
        let t = token(s, "OPP-2026-0001", "Head@OPP.example");
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(verify(s, "OPP-2026-0001", "head@opp.example", &t));
        assert!(!verify(s, "OPP-2026-0002", "head@opp.example", &t));
        assert!(!verify(s, "OPP-2026-0001", "md@opp.example", &t));
        assert!(!verify(b"other", "OPP-2026-0001", "head@opp.example", &t));
        assert!(!verify(s, "OPP-2026-0001", "head@opp.example", ""));
    }

    #[test]
    fn message_ids_round_trip() {
        let id = message_id(12, "OPP-2026-0001", "0123456789abcdef0123", "opp.example");
        assert_eq!(id, "r12.OPP-2026-0001.0123456789abcdef0123@opp.example");
        assert_eq!(
            parse_message_id(&id, "opp.example"),
            Some(("OPP-2026-0001", "0123456789abcdef0123"))
        );
        assert_eq!(parse_message_id(&id, "else.example"), None);
        assert_eq!(
            parse_message_id("CAF=xyz@mail.gmail.com", "mail.gmail.com"),
            None
        );
    }

    #[test]
    fn notice_ids_carry_a_token_and_other_shapes_are_not_ours() {
        let id = notice_message_id("quarantine.42", DESK, "0123456789abcdef0123", "opp.example");
        assert_eq!(id, "quarantine.42.desk.0123456789abcdef0123@opp.example");
        assert_eq!(
            parse_message_id(&id, "opp.example"),
            Some((DESK, "0123456789abcdef0123"))
        );
        let id = notice_message_id(
            "ack-overdue.7",
            "OPP-2026-0001",
            "fedcba9876543210fedc",
            "opp.example",
        );
        assert!(is_notice_message_id(&id));
        assert!(!is_notice_message_id(&message_id(
            7,
            "OPP-2026-0001",
            "fedcba9876543210fedc",
            "opp.example"
        )));
        assert_eq!(
            parse_message_id(&id, "opp.example"),
            Some(("OPP-2026-0001", "fedcba9876543210fedc"))
        );
        // Mail clients' own ids at our domain, and our old fixed ones.
        for id in [
            "quarantine.42@opp.example",
            "1234567.1.1234567890123.JavaMail.jo@opp.example",
            "1290000000.12345.2.camel@opp.example",
            "20090113110010.GA22727@opp.example",
            "r.OPP-2026-0001.abc@opp.example",
            "Quarantine.42.desk.abc@opp.example",
            "e5a1b2c3-4d5e-6f70-8192-a3b4c5d6e7f8@opp.example",
        ] {
            assert_eq!(parse_message_id(id, "opp.example"), None, "{id}");
        }
    }

    #[test]
    fn plus_addresses_and_references_carry_tokens() {
        let a = plus_address(
            "complaints@opp.example",
            "OPP-2026-0001",
            "0123456789abcdef0123",
        );
        assert_eq!(
            a,
            "complaints+OPP-2026-0001.0123456789abcdef0123@opp.example"
        );
        assert_eq!(
            parse_plus_address(&a, "complaints@opp.example"),
            Some(("OPP-2026-0001", "0123456789abcdef0123"))
        );
        assert_eq!(
            parse_plus_address(
                "other+OPP-2026-0001.abc@opp.example",
                "complaints@opp.example"
            ),
            None
        );
        assert_eq!(
            parse_plus_address("complaints+x.y@elsewhere.example", "complaints@opp.example"),
            None
        );
        let id = message_id(7, "OPP-2026-0001", "fedcba9876543210fedc", "opp.example");
        let got = carried(
            ["<unrelated@mail.example>", id.as_str(), id.as_str()],
            [a.as_str(), "complaints@opp.example"],
            "opp.example",
            "complaints@opp.example",
        );
        assert_eq!(
            got,
            vec![
                ("OPP-2026-0001".to_string(), "fedcba9876543210fedc"),
                ("OPP-2026-0001".to_string(), "0123456789abcdef0123")
            ]
        );
        // As the parser gives addresses: lower case.
        let lower = a.to_ascii_lowercase();
        let got = carried(
            [],
            [lower.as_str()],
            "opp.example",
            "complaints@opp.example",
        );
        assert_eq!(
            got,
            vec![("OPP-2026-0001".to_string(), "0123456789abcdef0123")]
        );
    }
}
