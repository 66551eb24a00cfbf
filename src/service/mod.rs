//! Services: gather facts from the store, call the core, and persist what
//! it decided (case state, audit events, outbox rows, deadlines) in ONE
//! SQLite transaction.

pub mod intake;
pub mod letters;

use crate::adapters::db::Store;
use crate::adapters::render::Templates;
use crate::config::Config;
use crate::core::calendar::WorkingCalendar;
use crate::core::classify::OwnIdentity;
use crate::core::intake::RoutingRule;
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
        let tx = store.transaction()?;
        let secret = crate::adapters::db::secret(&tx, "token-secret", random_secret)?;
        tx.commit()?;
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
