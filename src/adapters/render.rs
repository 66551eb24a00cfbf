//! Letters from handlebars templates.
//!
//! - One pair per letter: `NAME.txt.hbs` (its first line is `Subject: ...`)
//!   and `NAME.html.hbs`. The defaults are embedded in the binary; a file of
//!   the same name in the organisation's `[templates] dir` replaces one.
//! - Strict mode: a template that names a value the letter does not have is
//!   an error. [`Templates::load`] renders every template once with sample
//!   values, so a broken template is reported at start (`redress check`),
//!   never at send time.
//! - HTML escaping applies to `.html.hbs` only; text letters are plain.

use anyhow::{bail, Context as _};
use handlebars::Handlebars;
use serde_json::{json, Value};
use std::path::Path;

/// The letters redress knows, with their embedded default pair.
const DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "acknowledgement",
        include_str!("../../templates/acknowledgement.txt.hbs"),
        include_str!("../../templates/acknowledgement.html.hbs"),
    ),
    (
        "new-case",
        include_str!("../../templates/new-case.txt.hbs"),
        include_str!("../../templates/new-case.html.hbs"),
    ),
    (
        "quarantine",
        include_str!("../../templates/quarantine.txt.hbs"),
        include_str!("../../templates/quarantine.html.hbs"),
    ),
    (
        "send-failed",
        include_str!("../../templates/send-failed.txt.hbs"),
        include_str!("../../templates/send-failed.html.hbs"),
    ),
];

/// A rendered letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The registered templates.
pub struct Templates {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

impl Templates {
    /// Registers the defaults, then any overrides from `dir`, and renders
    /// each letter once with sample values.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        for (name, txt, htm) in DEFAULTS {
            let (txt, htm) = match dir {
                Some(dir) => (
                    read_override(dir, &format!("{name}.txt.hbs"))?
                        .unwrap_or_else(|| txt.to_string()),
                    read_override(dir, &format!("{name}.html.hbs"))?
                        .unwrap_or_else(|| htm.to_string()),
                ),
                None => (txt.to_string(), htm.to_string()),
            };
            text.register_template_string(name, txt)
                .with_context(|| format!("Template {name}.txt.hbs"))?;
            html.register_template_string(name, htm)
                .with_context(|| format!("Template {name}.html.hbs"))?;
        }
        let templates = Templates { text, html };
        for (name, _, _) in DEFAULTS {
            templates.render(name, &sample(name)).with_context(|| {
                format!("Template {name} does not render with the values a letter has")
            })?;
        }
        Ok(templates)
    }

    /// Renders letter `name` with `data`.
    pub fn render(&self, name: &str, data: &Value) -> anyhow::Result<Letter> {
        let full = self
            .text
            .render(name, data)
            .with_context(|| format!("{name}.txt.hbs"))?;
        let html = self
            .html
            .render(name, data)
            .with_context(|| format!("{name}.html.hbs"))?;
        let (first, body) = full.split_once('\n').unwrap_or((&full, ""));
        let Some(subject) = first.strip_prefix("Subject:") else {
            bail!("{name}.txt.hbs must start with a \"Subject: ...\" line");
        };
        Ok(Letter {
            subject: subject.trim().to_string(),
            text: body.trim_start_matches(['\r', '\n']).to_string(),
            html,
        })
    }

    /// The names of every letter.
    pub fn names() -> impl Iterator<Item = &'static str> {
        DEFAULTS.iter().map(|(n, _, _)| *n)
    }
}

fn read_override(dir: &Path, file: &str) -> anyhow::Result<Option<String>> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Reading template {}", path.display())),
    }
}

/// The values each letter is rendered with (sample values, for the start-up
/// check; the service passes the real ones with the same keys).
pub fn sample(_name: &str) -> Value {
    json!({
            "organisation": "OP Performance Limited",
            "mailbox": "complaints@opp.example",
            "reference": "OPP-2026-0001",
            "complainant_name": "Alice Example",
            "received_date": "Monday 23 November 2026",
            "target_date": "Monday 21 December 2026",
            "next_steps": "We will look into it.",
            "stage": "informal",
            "subject": "My certificate has not arrived",
            "department": "Training",
            "complainant_email": "alice@example.net",
            "complainant_phone": "07700 900123",
            "recipient_name": "Quality Coordinator",
            "noted_reference": "",
            "acknowledgement_note": "",
            "body": "My certificate has not arrived.",
            "message_id": "abc@example.net",
            "reason": "no From header",
            "kind": "acknowledgement",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render_with_subject_and_escaping() {
        let t = Templates::load(None).expect("templates");
        let mut data = sample("acknowledgement");
        data["complainant_name"] = json!("Tom <& Jerry>");
        let l = t.render("acknowledgement", &data).expect("render");
        assert_eq!(l.subject, "We have received your complaint [OPP-2026-0001]");
        assert!(l.text.contains("Dear Tom <& Jerry>,"));
        assert!(l.html.contains("Tom &lt;&amp; Jerry&gt;"));
        assert!(l.text.contains("Monday 21 December 2026"));
    }

    #[test]
    fn overrides_replace_defaults_and_errors_show_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("acknowledgement.txt.hbs"),
            "Subject: Got it {{reference}}\n\nHello {{complainant_name}}\n",
        )
        .expect("write");
        let t = Templates::load(Some(dir.path())).expect("override");
        let l = t
            .render("acknowledgement", &sample("acknowledgement"))
            .expect("render");
        assert_eq!(l.subject, "Got it OPP-2026-0001");
        assert_eq!(l.text, "Hello Alice Example\n");

        // A value no letter has: refused at load, in strict mode.
        std::fs::write(
            dir.path().join("acknowledgement.txt.hbs"),
            "Subject: x\n\n{{shoe_size}}\n",
        )
        .expect("write");
        let err = Templates::load(Some(dir.path()))
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("acknowledgement")),
            "{err:?}"
        );
        // A syntax error, too.
        std::fs::write(
            dir.path().join("acknowledgement.txt.hbs"),
            "Subject: x\n\n{{#if}}\n",
        )
        .expect("write");
        assert!(Templates::load(Some(dir.path())).is_err());
        // No subject line.
        std::fs::write(dir.path().join("acknowledgement.txt.hbs"), "Hello\n").expect("write");
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
