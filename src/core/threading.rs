//! Which case an incoming mail belongs to.
//!
//! In order (DESIGN.md, issue "intake"):
//! 1. our case token (`[OPP-2026-0042]`) in the subject, or in a plus-address
//!    (`complaints+OPP-2026-0042@...`) the mail was sent to, when the sender
//!    is a participant of that case;
//! 2. a Message-ID we sent or received in In-Reply-To/References;
//! 3. otherwise a new case. A token alone from a stranger never attaches: a
//!    stranger quoting someone's reference must not join their case; the new
//!    case notes the reference instead.
//!
//! Pure: the shell looks the facts up and [`decide`] chooses.

use super::case::CaseRef;
use super::message::Inbound;
use regex::Regex;
use std::sync::LazyLock;

/// A case found by a token, as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCase {
    pub case_id: i64,
    pub reference: CaseRef,
    pub sender_is_participant: bool,
}

/// What the shell found out about the mail's references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadFacts {
    /// The first token in the mail that names a case in the store.
    pub token_case: Option<TokenCase>,
    /// The case of the first referenced Message-ID we know (sent or received).
    pub referenced_case: Option<i64>,
}

/// How a mail was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Token,
    References,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadDecision {
    Attach {
        case_id: i64,
        by: MatchedBy,
    },
    /// A new case; `noted_reference` is a token the sender quoted but could
    /// not attach to (recorded on the new case for staff to see).
    NewCase {
        noted_reference: Option<CaseRef>,
    },
}

/// Chooses the case for a mail.
pub fn decide(facts: &ThreadFacts) -> ThreadDecision {
    match (&facts.token_case, facts.referenced_case) {
        (Some(t), _) if t.sender_is_participant => ThreadDecision::Attach {
            case_id: t.case_id,
            by: MatchedBy::Token,
        },
        (_, Some(case_id)) => ThreadDecision::Attach {
            case_id,
            by: MatchedBy::References,
        },
        (Some(t), None) => ThreadDecision::NewCase {
            noted_reference: Some(t.reference.clone()),
        },
        (None, None) => ThreadDecision::NewCase {
            noted_reference: None,
        },
    }
}

/// Case tokens with our prefix in the subject and in plus-addresses of the
/// complaints address among the recipients, in that order, without repeats.
pub fn case_tokens(m: &Inbound, prefix: &str, complaints_address: &str) -> Vec<CaseRef> {
    // Any PREFIX-YYYY-NNNN, compiled once; only our prefix counts
    // ("XOPP-2026-0001" is not ours, "re-OPP-2026-0001" is).
    static TOKEN: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)\b([A-Z0-9][A-Z0-9-]*?)-(\d{4})-(\d{4,})\b").ok());
    let Some(re) = TOKEN.as_ref() else {
        return Vec::new();
    };
    let upper = prefix.to_ascii_uppercase();
    let dashed = format!("-{upper}");
    let mut out: Vec<CaseRef> = Vec::new();
    let mut push = |text: &str| {
        for c in re.captures_iter(text) {
            let found = c[1].to_ascii_uppercase();
            if found != upper && !found.ends_with(&dashed) {
                continue;
            }
            if let Some(r) = CaseRef::parse(&format!("{upper}-{}-{}", &c[2], &c[3])) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    };
    push(&m.subject);
    for rcpt in m.to.iter().chain(&m.cc) {
        if let Some(tag) = crate::core::token::plus_tag(&rcpt.address, complaints_address) {
            push(tag);
        }
    }
    out
}

/// The plus-address that carries a case token (`complaints+OPP-2026-0042@...`).
pub fn plus_address(complaints_address: &str, reference: &CaseRef) -> String {
    match complaints_address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{reference}@{domain}"),
        None => complaints_address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::Mailbox;

    fn mb(a: &str) -> Mailbox {
        Mailbox {
            name: String::new(),
            address: a.into(),
        }
    }

    fn token(participant: bool) -> Option<TokenCase> {
        Some(TokenCase {
            case_id: 7,
            reference: CaseRef::new("OPP", 2026, 42),
            sender_is_participant: participant,
        })
    }

    #[test]
    fn decisions_follow_the_order() {
        let attach = |case_id, by| ThreadDecision::Attach { case_id, by };
        assert_eq!(
            decide(&ThreadFacts {
                token_case: token(true),
                referenced_case: Some(9)
            }),
            attach(7, MatchedBy::Token)
        );
        assert_eq!(
            decide(&ThreadFacts {
                token_case: token(false),
                referenced_case: Some(9)
            }),
            attach(9, MatchedBy::References)
        );
        assert_eq!(
            decide(&ThreadFacts {
                token_case: token(false),
                referenced_case: None
            }),
            ThreadDecision::NewCase {
                noted_reference: Some(CaseRef::new("OPP", 2026, 42))
            }
        );
        assert_eq!(
            decide(&ThreadFacts::default()),
            ThreadDecision::NewCase {
                noted_reference: None
            }
        );
    }

    #[test]
    fn tokens_come_from_subject_and_plus_addresses() {
        let m = Inbound {
            subject: "Re: We have received your complaint [OPP-2026-0042] and opp-2026-0042 again, not XOPP-2026-0001".into(),
            to: vec![mb("complaints+OPP-2026-0007@opp.example"), mb("other+OPP-2026-0008@else.example")],
            cc: vec![mb("complaints@opp.example"), mb("Complaints+opp-2026-0009@OPP.example")],
            ..Inbound::default()
        };
        let refs: Vec<String> = case_tokens(&m, "OPP", "complaints@opp.example")
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(refs, ["OPP-2026-0042", "OPP-2026-0007", "OPP-2026-0009"]);
        assert_eq!(
            plus_address("complaints@opp.example", &CaseRef::new("OPP", 2026, 7)),
            "complaints+OPP-2026-0007@opp.example"
        );
    }
}
