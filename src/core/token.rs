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

/// The Message-ID of outbox row `row` for a case: `r<row>.<reference>.<token>@<domain>`.
pub fn message_id(row: i64, reference: &str, token: &str, domain: &str) -> String {
    format!("r{row}.{reference}.{token}@{domain}")
}

/// Reads a Message-ID made by [`message_id`]: (reference, token).
pub fn parse_message_id<'a>(id: &'a str, domain: &str) -> Option<(&'a str, &'a str)> {
    let (local, d) = id.rsplit_once('@')?;
    if !d.eq_ignore_ascii_case(domain) {
        return None;
    }
    let mut parts = local.splitn(3, '.');
    let row = parts.next()?;
    let reference = parts.next()?;
    let token = parts.next()?;
    (row.starts_with('r') && row[1..].chars().all(|c| c.is_ascii_digit()))
        .then_some((reference, token))
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
    let (local, domain) = complaints_address.rsplit_once('@')?;
    let (al, ad) = address.rsplit_once('@')?;
    if !ad.eq_ignore_ascii_case(domain) {
        return None;
    }
    let tag = al
        .get(..local.len())
        .filter(|l| l.eq_ignore_ascii_case(local))
        .and_then(|_| al.get(local.len()..))?
        .strip_prefix('+')?;
    tag.rsplit_once('.')
}

/// Every (reference, token) a reply carries: in the Message-IDs it answers
/// (In-Reply-To, References) and in plus-addresses among its recipients.
pub fn carried<'a>(
    message_ids: impl IntoIterator<Item = &'a str>,
    recipients: impl IntoIterator<Item = &'a str>,
    domain: &str,
    complaints_address: &str,
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let found = message_ids
        .into_iter()
        .filter_map(|id| parse_message_id(id.trim_matches(['<', '>']), domain))
        .chain(
            recipients
                .into_iter()
                .filter_map(|a| parse_plus_address(a, complaints_address)),
        );
    for pair in found {
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
        let id = message_id(12, "OPP-2026-0001", "abc123", "opp.example");
        assert_eq!(id, "r12.OPP-2026-0001.abc123@opp.example");
        assert_eq!(
            parse_message_id(&id, "opp.example"),
            Some(("OPP-2026-0001", "abc123"))
        );
        assert_eq!(parse_message_id(&id, "else.example"), None);
        assert_eq!(
            parse_message_id("CAF=xyz@mail.gmail.com", "mail.gmail.com"),
            None
        );
    }

    #[test]
    fn plus_addresses_and_references_carry_tokens() {
        let a = plus_address("complaints@opp.example", "OPP-2026-0001", "abc123");
        assert_eq!(a, "complaints+OPP-2026-0001.abc123@opp.example");
        assert_eq!(
            parse_plus_address(&a, "complaints@opp.example"),
            Some(("OPP-2026-0001", "abc123"))
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
        let id = message_id(7, "OPP-2026-0001", "t0k", "opp.example");
        let got = carried(
            ["<unrelated@mail.example>", id.as_str(), id.as_str()],
            [a.as_str(), "complaints@opp.example"],
            "opp.example",
            "complaints@opp.example",
        );
        assert_eq!(
            got,
            vec![("OPP-2026-0001", "t0k"), ("OPP-2026-0001", "abc123")]
        );
    }
}
