//! The one place that reads the system clock. Everything else takes `now`
//! as a parameter (clippy.toml forbids `Utc::now` elsewhere), so tests can
//! run any instant they like.

use chrono::{DateTime, SubsecRound, Utc};

/// The current instant, to the second (the store keeps seconds).
#[allow(clippy::disallowed_methods)]
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}
