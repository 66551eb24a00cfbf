//! Placeholder until the classifier lands (same interface).

use super::message::Inbound;

pub struct OwnIdentity {
    pub addresses: Vec<String>,
    pub message_id_domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    Human,
    Loop(String),
    Bounce(String),
    AutoReply(String),
    List(String),
}

impl Classification {
    pub fn is_robot(&self) -> bool {
        !matches!(self, Classification::Human)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Classification::Human => "human",
            Classification::Loop(_) => "loop",
            Classification::Bounce(_) => "bounce",
            Classification::AutoReply(_) => "auto-reply",
            Classification::List(_) => "list",
        }
    }
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

pub fn classify(m: &Inbound, own: &OwnIdentity) -> Classification {
    if own.addresses.iter().any(|a| a == m.from_address()) {
        return Classification::Loop("from our own address".into());
    }
    if let Some(v) = m.header("auto-submitted") {
        if !v.trim().eq_ignore_ascii_case("no") {
            return Classification::AutoReply(format!("Auto-Submitted: {v}"));
        }
    }
    Classification::Human
}
