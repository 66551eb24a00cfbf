//! Placeholder until the full parser adapter lands (same interface).

use crate::core::message::{synthetic_message_id, Inbound, Mailbox};
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a mail message")]
    NotMail,
}

pub fn parse(raw: &[u8]) -> Result<Inbound, ParseError> {
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NotMail)?;
    let from = m.from().and_then(|a| a.first()).map(|a| Mailbox {
        name: a.name().unwrap_or_default().to_string(),
        address: a.address().unwrap_or_default().to_ascii_lowercase(),
    });
    let (message_id, synthetic) = match m.message_id() {
        Some(id) => (id.to_string(), false),
        None => (
            synthetic_message_id(&hex::encode(sha2::Sha256::digest(raw))),
            true,
        ),
    };
    let ids = |h: &mail_parser::HeaderValue| -> Vec<String> {
        h.as_text_list()
            .map(|l| l.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default()
    };
    Ok(Inbound {
        message_id,
        message_id_synthetic: synthetic,
        in_reply_to: ids(m.in_reply_to()),
        references: ids(m.references()),
        from,
        to: m
            .to()
            .map(|a| {
                a.iter()
                    .map(|x| Mailbox {
                        name: x.name().unwrap_or_default().to_string(),
                        address: x.address().unwrap_or_default().to_ascii_lowercase(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        subject: m.subject().unwrap_or_default().to_string(),
        body_text: m.body_text(0).map(|b| b.to_string()).unwrap_or_default(),
        headers: m
            .headers()
            .iter()
            .map(|h| {
                (
                    h.name().to_ascii_lowercase(),
                    m.header_raw(h.name())
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                )
            })
            .collect(),
        ..Inbound::default()
    })
}
