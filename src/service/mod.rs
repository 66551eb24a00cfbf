//! Services: gather facts from the store, call the core, and persist what
//! it decided (case state, audit events, outbox rows, deadlines) in ONE
//! SQLite transaction.

pub mod casework;
pub mod followup;
pub mod intake;
pub mod ladder;
pub mod letters;
pub mod oauth;
pub mod ops;
pub mod record;
pub mod staff;

use crate::adapters::db::Store;
use crate::adapters::render::Templates;
use crate::config::Config;
use crate::core::calendar::WorkingCalendar;
use crate::core::classify::OwnIdentity;
use crate::core::intake::RoutingRule;
use crate::core::message::{is_or_plus_of, Inbound};
use crate::core::procedure::Procedure;
use anyhow::Context as _;

/// Everything a service needs that comes from config, built once at start
/// (and again on reload).
pub struct Desk {
    pub config: Config,
    pub calendar: WorkingCalendar,
    pub procedure: Procedure,
    pub templates: Templates,
    pub routing: Vec<RoutingRule>,
    pub own: OwnIdentity,
    /// The key of the tokens in our Message-IDs (generated into the store).
    pub secret: Vec<u8>,
}

impl Desk {
    /// Builds the desk; reads (or creates) the token secret in `store`.
    pub fn new(config: Config, store: &mut Store) -> anyhow::Result<Desk> {
        let calendar = config.calendar(None)?;
        let templates = Templates::load(config.templates.dir.as_deref())?;
        let secret = match &config.staff.token_secret {
            Some(s) => s.expose().trim().as_bytes().to_vec(),
            None => {
                let tx = store.transaction()?;
                let secret = crate::adapters::db::secret(&tx, "token-secret", random_secret)?;
                tx.commit()?;
                secret
            }
        };
        let mut addresses = vec![config.mailbox.address.to_ascii_lowercase()];
        let from = config.from_address().to_ascii_lowercase();
        if !addresses.contains(&from) {
            addresses.push(from);
        }
        Ok(Desk {
            calendar,
            procedure: config.procedure(),
            templates,
            routing: config.routing_rules(),
            own: OwnIdentity {
                addresses,
                message_id_domain: config.message_id_domain().to_ascii_lowercase(),
            },
            secret,
            config,
        })
    }

    /// The Reply-To of mail to a staff member about a case: the complaints
    /// address, with the case and the recipient's token after a `+` when
    /// `mailbox.plus_address_replies` is on.
    pub fn staff_reply_to(&self, reference: &str, recipient: &str) -> String {
        let address = &self.config.mailbox.address;
        if !self.config.mailbox.plus_address_replies || reference.is_empty() {
            return address.clone();
        }
        let t = crate::core::token::token(&self.secret, reference, recipient);
        crate::core::token::plus_address(address, reference, &t)
    }

    /// Who hears of a case starting `stage` in `department`: the Quality
    /// Coordinator, the department head, and the Managing Director when
    /// the MD answers that stage (seed 000's appeal).
    pub fn stage_recipients(
        &self,
        department: &str,
        stage: &crate::core::procedure::StageName,
    ) -> Vec<(&str, &str)> {
        let mut to = self.config.new_case_recipients(department);
        let md = &self.config.staff.managing_director;
        let md_answers = self
            .procedure
            .stage(stage)
            .is_some_and(|s| s.answered_by == crate::core::procedure::Answerer::ManagingDirector);
        if md_answers && !to.iter().any(|(_, a)| a.eq_ignore_ascii_case(&md.address)) {
            to.push((&md.name, &md.address));
        }
        to
    }

    /// The configured staff member with this address: (name, role).
    pub fn staff_member(&self, address: &str) -> Option<(String, String)> {
        let s = &self.config.staff;
        let mut people: Vec<(&str, &str, String)> = vec![
            (
                &s.quality_coordinator.name,
                &s.quality_coordinator.address,
                "quality-coordinator".into(),
            ),
            (
                &s.managing_director.name,
                &s.managing_director.address,
                "managing-director".into(),
            ),
        ];
        people.extend(s.senior_managers.iter().map(|m| {
            (
                m.name.as_str(),
                m.address.as_str(),
                format!("senior-manager:{}", m.id),
            )
        }));
        people.extend(s.departments.iter().map(|d| {
            (
                d.head.name.as_str(),
                d.head.address.as_str(),
                format!("department-head:{}", d.id),
            )
        }));
        people
            .into_iter()
            .find(|(_, a, _)| a.eq_ignore_ascii_case(address))
            .map(|(n, _, r)| (n.to_string(), r))
    }

    /// Whether `e` (lower case) is the desk's or a member of staff's
    /// address, or one of their plus-addresses: `complaints+x@` reaches
    /// the desk's inbox (and `complaints+uk+x@` that of a desk at
    /// `complaints+uk@`).
    pub fn is_desk_or_staff(&self, e: &str) -> bool {
        let staff = self.config.staff_addresses();
        staff.iter().any(|(a, _)| is_or_plus_of(e, a))
            || self.own.addresses.iter().any(|a| is_or_plus_of(e, a))
    }

    /// Where letters to the sender of `m` go, in lower case: its Reply-To,
    /// unless that names the desk or a member of staff (a letter there
    /// would reach us, not the complainant, and still count as sent), else
    /// its From.
    pub fn letters_address(&self, m: &Inbound) -> String {
        let reply_to = m.reply_address().to_ascii_lowercase();
        if self.is_desk_or_staff(&reply_to) {
            m.from_address().to_ascii_lowercase()
        } else {
            reply_to
        }
    }

    /// Whether `address` is one of the configured staff.
    pub fn is_staff(&self, address: &str) -> bool {
        self.config
            .staff_addresses()
            .iter()
            .any(|(a, _)| a.eq_ignore_ascii_case(address))
    }
}

/// 32 random bytes from the kernel.
fn random_secret() -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("Reading /dev/urandom for the token secret")?;
    Ok(buf)
}
