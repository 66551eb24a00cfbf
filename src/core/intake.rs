//! What intake does with one classified, matched mail.
//!
//! - A human mail that matches no case opens one and is acknowledged, unless
//!   its sender has had the daily cap of automatic replies: then the case is
//!   still opened (nothing is lost) but no reply goes out, and the Quality
//!   Coordinator is told once.
//! - A human mail that matches a case joins it; no second acknowledgement.
//! - A robot (auto-reply, bounce, list, our own mail) never changes a case
//!   and is never answered: it is recorded on the case it refers to, else on
//!   its sender's open case (an out-of-office reply from a complainant that
//!   quotes nothing), else kept on its own.
//!
//! Also the routing of a new case to a department. Pure.

use super::classify::Classification;
use super::message::Inbound;
use super::threading::ThreadDecision;
use regex::Regex;

/// Facts about the sender the shell looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderFacts {
    /// Automatic replies sent to this address in the last 24 hours.
    pub auto_replies_last_day: u32,
    /// Whether QC was already told about this sender's cap in that window.
    pub cap_notice_sent: bool,
    /// The sender's latest open case as complainant, if any: where an
    /// out-of-office reply that quotes nothing is recorded.
    pub open_case: Option<i64>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeDecision {
    /// Open a new case; `acknowledge` is false past the reply cap, when
    /// `tell_qc_cap` says whether to tell QC now. `doubtful` is set when the
    /// mail looked automatic on weak evidence only: a case without an
    /// acknowledgement, and QC is told why.
    OpenCase {
        acknowledge: bool,
        tell_qc_cap: bool,
        doubtful: Option<String>,
    },
    /// Add the mail to an existing case. `robot` mail is recorded only.
    AddToCase { case_id: i64, robot: bool },
    /// Keep the mail, attached to no case (a robot that refers to none).
    RecordOnly,
}

/// Decides what to do with a mail.
pub fn decide(
    class: &Classification,
    thread: &ThreadDecision,
    sender: SenderFacts,
    cap: u32,
) -> IntakeDecision {
    match (class.is_robot(), thread) {
        (robot, ThreadDecision::Attach { case_id, .. }) => IntakeDecision::AddToCase {
            case_id: *case_id,
            robot,
        },
        (true, ThreadDecision::NewCase { .. }) => match sender.open_case {
            Some(case_id) => IntakeDecision::AddToCase {
                case_id,
                robot: true,
            },
            None if class.is_weak() => IntakeDecision::OpenCase {
                acknowledge: false,
                tell_qc_cap: false,
                doubtful: Some(class.reason().to_string()),
            },
            None => IntakeDecision::RecordOnly,
        },
        (false, ThreadDecision::NewCase { .. }) => {
            let under_cap = sender.auto_replies_last_day < cap;
            IntakeDecision::OpenCase {
                acknowledge: under_cap,
                tell_qc_cap: !under_cap && !sender.cap_notice_sent,
                doubtful: None,
            }
        }
    }
}

/// Where a routing rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteField {
    Subject,
    Body,
    /// The addresses the mail was sent to (To and Cc).
    Recipient,
    /// Subject, body or recipients.
    Any,
}

/// One routing rule: mail whose field matches goes to the department.
#[derive(Debug, Clone)]
pub struct RoutingRule {
    pub department: String,
    pub field: RouteField,
    pub pattern: Regex,
}

/// The department of a new case: the first rule that matches, else
/// `default`.
pub fn route<'a>(m: &Inbound, rules: &'a [RoutingRule], default: &'a str) -> &'a str {
    let recipients = || {
        m.to.iter()
            .chain(&m.cc)
            .map(|r| r.address.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    rules
        .iter()
        .find(|r| match r.field {
            RouteField::Subject => r.pattern.is_match(&m.subject),
            RouteField::Body => r.pattern.is_match(&m.body_text),
            RouteField::Recipient => r.pattern.is_match(&recipients()),
            RouteField::Any => {
                r.pattern.is_match(&m.subject)
                    || r.pattern.is_match(&m.body_text)
                    || r.pattern.is_match(&recipients())
            }
        })
        .map(|r| r.department.as_str())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::Mailbox;

    const NEW: ThreadDecision = ThreadDecision::NewCase {
        noted_reference: None,
    };

    #[test]
    fn humans_open_cases_and_robots_never_do() {
        let human = Classification::Human;
        let robot = Classification::AutoReply("Auto-Submitted: auto-replied".into());
        assert_eq!(
            decide(&human, &NEW, SenderFacts::default(), 3),
            IntakeDecision::OpenCase {
                acknowledge: true,
                tell_qc_cap: false,
                doubtful: None
            }
        );
        assert_eq!(
            decide(&robot, &NEW, SenderFacts::default(), 3),
            IntakeDecision::RecordOnly
        );
        // A subject alone is weak evidence: a case, no acknowledgement.
        let weak = Classification::AutoReply("Subject: Absence".into());
        assert!(matches!(
            decide(&weak, &NEW, SenderFacts::default(), 3),
            IntakeDecision::OpenCase {
                acknowledge: false,
                doubtful: Some(_),
                ..
            }
        ));
        let complainant = SenderFacts {
            open_case: Some(8),
            ..SenderFacts::default()
        };
        assert_eq!(
            decide(&robot, &NEW, complainant, 3),
            IntakeDecision::AddToCase {
                case_id: 8,
                robot: true
            }
        );
        let attach = ThreadDecision::Attach {
            case_id: 4,
            by: crate::core::threading::MatchedBy::References,
        };
        assert_eq!(
            decide(&robot, &attach, SenderFacts::default(), 3),
            IntakeDecision::AddToCase {
                case_id: 4,
                robot: true
            }
        );
        assert_eq!(
            decide(&human, &attach, SenderFacts::default(), 3),
            IntakeDecision::AddToCase {
                case_id: 4,
                robot: false
            }
        );
    }

    #[test]
    fn the_cap_stops_replies_and_tells_qc_once() {
        let human = Classification::Human;
        let at_cap = SenderFacts {
            auto_replies_last_day: 3,
            cap_notice_sent: false,
            open_case: None,
        };
        assert_eq!(
            decide(&human, &NEW, at_cap, 3),
            IntakeDecision::OpenCase {
                acknowledge: false,
                tell_qc_cap: true,
                doubtful: None
            }
        );
        let told = SenderFacts {
            cap_notice_sent: true,
            ..at_cap
        };
        assert_eq!(
            decide(&human, &NEW, told, 3),
            IntakeDecision::OpenCase {
                acknowledge: false,
                tell_qc_cap: false,
                doubtful: None
            }
        );
    }

    #[test]
    fn routing_takes_the_first_matching_rule() {
        let rules = vec![
            RoutingRule {
                department: "assessment".into(),
                field: RouteField::Subject,
                pattern: Regex::new("(?i)assess").expect("re"),
            },
            RoutingRule {
                department: "funding".into(),
                field: RouteField::Recipient,
                pattern: Regex::new("(?i)^funding@|\\sfunding@").expect("re"),
            },
        ];
        let mut m = Inbound {
            subject: "My ASSESSOR was rude".into(),
            ..Inbound::default()
        };
        assert_eq!(route(&m, &rules, "training"), "assessment");
        m.subject = "Hello".into();
        assert_eq!(route(&m, &rules, "training"), "training");
        m.to = vec![Mailbox {
            name: String::new(),
            address: "funding@opp.example".into(),
        }];
        assert_eq!(route(&m, &rules, "training"), "funding");
    }
}
