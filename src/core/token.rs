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
}
