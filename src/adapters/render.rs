//! Letters from handlebars templates.
//!
//! - One letter per name: `NAME.txt.hbs` (its first line is `Subject: ...`)
//!   and, optionally, `NAME.html.hbs`. The defaults are embedded in the
//!   binary; a file of the same name in the organisation's `[templates] dir`
//!   replaces one, and an `.html.hbs` there is used even where the default
//!   has none.
//! - A letter without an HTML template gets an HTML part made from its
//!   rendered text ([`text_to_html`]): escaped, one `<p>` per paragraph.
//!   So the two parts cannot say different things.
//! - Text partials (`partials/NAME.txt.hbs`, `{{> NAME}}`) hold the blocks
//!   several staff letters share; the override dir may replace them too.
//! - Strict mode: a template that names a value the letter does not have is
//!   an error. [`Templates::load`] renders every template with its sample
//!   values and with variants that take the other side of the default
//!   templates' branches (see [`samples`]), so a broken template is
//!   reported at start (`redress check`), never at send time.
//! - HTML escaping applies to `.html.hbs` and the made HTML only; text
//!   letters are plain.

use anyhow::{bail, Context as _};
use handlebars::Handlebars;
use serde_json::{json, Value};
use std::path::Path;

/// The letters redress knows: name, embedded text template, embedded HTML
/// template (None: made from the text).
const DEFAULTS: &[(&str, &str, Option<&str>)] = &[
    (
        "acknowledgement",
        include_str!("../../templates/acknowledgement.txt.hbs"),
        Some(include_str!("../../templates/acknowledgement.html.hbs")),
    ),
    (
        "new-case",
        include_str!("../../templates/new-case.txt.hbs"),
        Some(include_str!("../../templates/new-case.html.hbs")),
    ),
    (
        "quarantine",
        include_str!("../../templates/quarantine.txt.hbs"),
        Some(include_str!("../../templates/quarantine.html.hbs")),
    ),
    (
        "send-failed",
        include_str!("../../templates/send-failed.txt.hbs"),
        Some(include_str!("../../templates/send-failed.html.hbs")),
    ),
    (
        "escalation-1",
        include_str!("../../templates/escalation-1.txt.hbs"),
        None,
    ),
    (
        "escalation-2",
        include_str!("../../templates/escalation-2.txt.hbs"),
        None,
    ),
    (
        "escalation-3",
        include_str!("../../templates/escalation-3.txt.hbs"),
        None,
    ),
    ("hold", include_str!("../../templates/hold.txt.hbs"), None),
    (
        "resume",
        include_str!("../../templates/resume.txt.hbs"),
        None,
    ),
    (
        "extension",
        include_str!("../../templates/extension.txt.hbs"),
        None,
    ),
    (
        "resolution",
        include_str!("../../templates/resolution.txt.hbs"),
        None,
    ),
    (
        "response",
        include_str!("../../templates/response.txt.hbs"),
        None,
    ),
    (
        "command-not-understood",
        include_str!("../../templates/command-not-understood.txt.hbs"),
        None,
    ),
    (
        "staff-unauthenticated",
        include_str!("../../templates/staff-unauthenticated.txt.hbs"),
        None,
    ),
    (
        "assigned",
        include_str!("../../templates/assigned.txt.hbs"),
        None,
    ),
    (
        "acknowledgement-overdue",
        include_str!("../../templates/acknowledgement-overdue.txt.hbs"),
        None,
    ),
    (
        "oauth2-refresh-failed",
        include_str!("../../templates/oauth2-refresh-failed.txt.hbs"),
        None,
    ),
    (
        "complainant-wrote",
        include_str!("../../templates/complainant-wrote.txt.hbs"),
        None,
    ),
    (
        "feedback-request",
        include_str!("../../templates/feedback-request.txt.hbs"),
        None,
    ),
    (
        "notices-held",
        include_str!("../../templates/notices-held.txt.hbs"),
        None,
    ),
    (
        "letter-to-post",
        include_str!("../../templates/letter-to-post.txt.hbs"),
        None,
    ),
];

/// Text partials shared by letters: name (as in `{{> NAME}}`), embedded
/// default. An override is `partials/NAME.txt.hbs` in the templates dir.
const PARTIALS: &[(&str, &str)] = &[
    (
        "case-summary",
        include_str!("../../templates/partials/case-summary.txt.hbs"),
    ),
    (
        "staff-footer",
        include_str!("../../templates/partials/staff-footer.txt.hbs"),
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
    /// Only the letters that have an HTML template; the others get theirs
    /// made from the text.
    html: Handlebars<'static>,
}

impl Templates {
    /// Registers the defaults, then any overrides from `dir`, and renders
    /// each letter with its sample values.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        for (name, default) in PARTIALS {
            let file = format!("partials/{name}.txt.hbs");
            let source = source(dir, &file, Some(default))?.unwrap_or_default();
            text.register_partial(name, source)
                .with_context(|| format!("Template {file}"))?;
        }
        for (name, txt, htm) in DEFAULTS {
            let file = format!("{name}.txt.hbs");
            let txt = source(dir, &file, Some(txt))?.unwrap_or_default();
            text.register_template_string(name, txt)
                .with_context(|| format!("Template {file}"))?;
            let file = format!("{name}.html.hbs");
            if let Some(htm) = source(dir, &file, *htm)? {
                html.register_template_string(name, htm)
                    .with_context(|| format!("Template {file}"))?;
            }
        }
        let templates = Templates { text, html };
        for name in Templates::names() {
            for data in samples(name) {
                templates.render(name, &data).with_context(|| {
                    format!("Template {name} does not render with the values a letter has")
                })?;
            }
        }
        Ok(templates)
    }

    /// Renders letter `name` with `data`.
    pub fn render(&self, name: &str, data: &Value) -> anyhow::Result<Letter> {
        let full = self
            .text
            .render(name, data)
            .with_context(|| format!("{name}.txt.hbs"))?;
        let (first, body) = full.split_once('\n').unwrap_or((&full, ""));
        let Some(subject) = first.strip_prefix("Subject:") else {
            bail!("{name}.txt.hbs must start with a \"Subject: ...\" line");
        };
        let text = body.trim_start_matches(['\r', '\n']).to_string();
        let html = if self.html.has_template(name) {
            self.html
                .render(name, data)
                .with_context(|| format!("{name}.html.hbs"))?
        } else {
            text_to_html(&text)
        };
        Ok(Letter {
            subject: subject.trim().to_string(),
            text,
            html,
        })
    }

    /// The names of every letter.
    pub fn names() -> impl Iterator<Item = &'static str> {
        DEFAULTS.iter().map(|(n, _, _)| *n)
    }
}

/// The template `file`: the override in `dir` if there is one, else
/// `default`.
fn source(dir: Option<&Path>, file: &str, default: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(dir) = dir {
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(t) => return Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("Reading template {}", path.display()))
            }
        }
    }
    Ok(default.map(str::to_string))
}

/// The HTML part of a letter that has no HTML template: the text, escaped,
/// a `<p>` per paragraph (paragraphs part at blank lines), `<br>` for the
/// line breaks inside one.
pub fn text_to_html(text: &str) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<body>\n");
    let mut paragraph: Vec<&str> = Vec::new();
    let lines = text.lines().map(|l| l.trim_end());
    for line in lines.chain(std::iter::once("")) {
        if !line.is_empty() {
            paragraph.push(line);
            continue;
        }
        if paragraph.is_empty() {
            continue;
        }
        out.push_str("<p>");
        for (i, l) in paragraph.drain(..).enumerate() {
            if i > 0 {
                out.push_str("<br>\n");
            }
            escape_into(&mut out, l);
        }
        out.push_str("</p>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The values letter `name` is rendered with: sample values under exactly
/// the keys the service passes, so this is also the data contract of each
/// letter. Every letter has `organisation`, `mailbox`, `reference` and
/// `recipient_name`; arrays are not empty, so strict mode reads the
/// `{{#each}}` bodies.
pub fn sample(name: &str) -> Value {
    let complainant = "Alice Example";
    let own = match name {
        "acknowledgement" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "received_date": "Monday 23 November 2026",
            "target_date": "Monday 21 December 2026",
            "next_steps": "The Quality Coordinator will look into your complaint with the head of the department concerned.",
            "stage": "formal",
            "subject": "My certificate has not arrived",
        }),
        "new-case" => json!({
            "recipient_name": "Jane Hughes",
            "complainant_name": complainant,
            "complainant_email": "alice@example.net",
            "complainant_phone": "07700 900123",
            "received_date": "Monday 23 November 2026",
            "target_date": "Monday 21 December 2026",
            "stage": "formal",
            "department": "Training",
            "subject": "My certificate has not arrived",
            "body": SAMPLE_BODY,
            "noted_reference": "",
            "acknowledgement_note": "",
            "recorded_note": "",
            "late_note": "",
            "commands_help": SAMPLE_COMMANDS_HELP,
        }),
        "quarantine" => json!({
            "recipient_name": "Jane Hughes",
            "received_date": "Monday 23 November 2026",
            "message_id": "abc@example.net",
            "complainant_email": "alice@example.net",
            "subject": "My certificate has not arrived",
            "reason": "no From header",
        }),
        "send-failed" => json!({
            "recipient_name": "Jane Hughes",
            "kind": "acknowledgement",
            "complainant_email": "alice@example.net",
            "reason": "550 5.1.1 <alice@example.net>: Recipient address rejected",
        }),
        "oauth2-refresh-failed" => json!({
            "recipient_name": "Jane Hughes",
            "since": "Monday 23 November 2026 at 10:04",
            "token_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "error": "the token endpoint refused the refresh (HTTP 400, invalid_grant): AADSTS70000: The provided value for the 'refresh_token' is not valid.",
            "advice": "the refresh token was revoked or has expired: sign in again to get a new refresh token and put it in oauth2.refresh_token_file",
            "smtp_affected": true,
        }),
        "escalation-1" | "escalation-2" | "escalation-3" => escalation_sample(name),
        "hold" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "subject": "My certificate has not arrived",
            "reason": "The member of staff your complaint concerns is away from work, and we need to hear their account before we can respond to you fairly.",
            "until_date": "Monday 11 January 2027",
        }),
        "resume" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "subject": "My certificate has not arrived",
            "target_date": "Thursday 21 January 2027",
        }),
        "extension" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "subject": "My certificate has not arrived",
            "reason": "We are waiting for the awarding body to confirm when your certificate was claimed, and they have told us they need another two weeks.",
            "previous_target_date": "Monday 21 December 2026",
            "target_date": "Monday 11 January 2027",
        }),
        "resolution" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "subject": "My certificate has not arrived",
            "outcome": "partly-upheld",
            "response": "We have spoken to our certification team and to the awarding body. Your certificate was claimed on 2 November, but the claim was rejected because of a typing error in your date of birth, and we did not notice the rejection.\n\nWe have corrected the claim, and the awarding body has confirmed that your certificate will be posted to you by Friday 8 January 2027. We have also changed how we check claims, so that a rejected claim is followed up within two working days.\n\nWe do not agree that you were misled about the timescale: the course handbook gives up to eight weeks for certificates to arrive.",
            "has_appeal": true,
            "appeal_route": "an appeal to the Managing Director",
            "appeal_deadline": "Thursday 21 January 2027",
            "external_route": "As your course leads to an accredited qualification, you can also complain to the awarding body or the regulator once you have been through every stage of our procedure. Reply to this email if you would like their contact details.",
        }),
        "response" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "subject": "My certificate has not arrived",
            "response": "Thank you for sending the photograph of your enrolment form.\n\nWe have passed it to the awarding body and asked them to confirm your details by the end of the week.",
            "target_date": "Monday 21 December 2026",
        }),
        "command-not-understood" => json!({
            "recipient_name": "Priya Shah",
            "subject": "Re: Overdue complaint [OPP-2026-0001]: escalation 1 of 3 to you as department head",
            "problems": [
                {"line": "#hodl until January", "why": "\"#hodl\" is not a command"},
                {"line": "#extend 31 Febuary", "why": "\"31 Febuary\" is not a date"},
            ],
            "commands_help": SAMPLE_COMMANDS_HELP,
        }),
        "acknowledgement-overdue" => json!({
            "recipient_name": "Jane Hughes",
            "complainant_name": complainant,
            "complainant_email": "alice@example.net",
            "subject": "My certificate has not arrived",
            "received_date": "Monday 23 November 2026",
            "acknowledgement_queued": true,
            "has_address": true,
        }),
        "staff-unauthenticated" => json!({
            "recipient_name": "Jane Hughes",
            "sender": "priya.shah@opp.example",
            "subject": "Re: New complaint OPP-2026-0001: My certificate has not arrived",
            "received_date": "Tuesday 24 November 2026",
            "reason": "it does not reply to a notification sent to that address",
            "case": "OPP-2026-0001",
        }),
        "assigned" => json!({
            "recipient_name": "Priya Shah",
            "assigned_by": "Jane Hughes (Quality Coordinator)",
            "complainant_name": complainant,
            "complainant_email": "alice@example.net",
            "subject": "My certificate has not arrived",
            "department": "Training",
            "stage": "formal",
            "received_date": "Monday 23 November 2026",
            "target_date": "Monday 21 December 2026",
            "body": SAMPLE_BODY,
            "complainant_message": "",
            "commands_help": SAMPLE_COMMANDS_HELP,
        }),
        "complainant-wrote" => json!({
            "recipient_name": "Priya Shah",
            "complainant_name": complainant,
            "complainant_email": "alice@example.net",
            "subject": "My certificate has not arrived",
            "department": "Training",
            "stage": "informal",
            "received_date": "Monday 23 November 2026",
            "target_date": "Monday 21 December 2026",
            "body": SAMPLE_BODY,
            "complainant_message": "",
            "message_date": "Thursday 3 December 2026 at 14:12",
            "sender": "Alice Example <alice@example.net>",
            "situation": "The case is open, with a target date of Monday 21 December 2026. To answer them, reply to this email with #reply on the first line and your answer below it.",
            "message": "I have found the email from your office that promised the certificate by 9 November; I have attached it.",
            "commands_help": SAMPLE_COMMANDS_HELP,
        }),
        "notices-held" => json!({
            "recipient_name": "Jane Hughes",
            "kind": "quarantine",
            "limit": 10,
            "since": "Monday 23 November 2026 at 10:04",
        }),
        "letter-to-post" => json!({
            "recipient_name": "Jane Hughes",
            "kind": "resolution",
            "complainant_name": complainant,
            "complainant_phone": "07700 900123",
            "letter_subject": "Our response to your complaint [OPP-2026-0001]",
            "letter_text": "Dear Alice Example,\n\nWe have looked into your complaint.",
        }),
        "feedback-request" => json!({
            "recipient_name": complainant,
            "complainant_name": complainant,
            "subject": "My certificate has not arrived",
            "resolved_date": "Friday 18 December 2026",
        }),
        _ => json!({}),
    };
    let mut data = json!({
        "organisation": "OP Performance Limited",
        "mailbox": "complaints@opp.example",
        "reference": "OPP-2026-0001",
        "recipient_name": complainant,
    });
    merge(&mut data, own);
    data
}

/// [`sample`] and variants of it that take the other side of the
/// template's branches, so the start-up check reads every value a branch
/// names.
pub fn samples(name: &str) -> Vec<Value> {
    let base = sample(name);
    let variants = match name {
        "new-case" => vec![
            json!({
                "complainant_phone": "",
                "noted_reference": "OPP-2026-0000",
                "acknowledgement_note": "No acknowledgement was sent: the sender has had three automatic replies today.",
            }),
            json!({
                "complainant_email": "",
                "recorded_note": "Received by post; recorded by quality@opp.example.",
                "late_note": "Raised late: the issue arose on Monday 2 November 2026.",
            }),
        ],
        "send-failed" => vec![json!({"reference": ""})],
        "oauth2-refresh-failed" => vec![json!({"smtp_affected": false})],
        "escalation-1" | "escalation-2" | "escalation-3" => {
            let other = if base["asked_before"]
                .as_array()
                .is_some_and(|a| a.is_empty())
            {
                escalation_sample("escalation-3")["asked_before"].clone()
            } else {
                json!([])
            };
            vec![json!({"asked_before": other, "days_overdue": 4})]
        }
        "hold" => vec![json!({"until_date": ""})],
        "acknowledgement-overdue" => vec![
            json!({"acknowledgement_queued": false}),
            json!({"acknowledgement_queued": false, "has_address": false, "complainant_email": ""}),
        ],
        "resolution" => {
            let mut v: Vec<Value> = OUTCOMES.iter().map(|o| json!({"outcome": o})).collect();
            v.push(json!({"has_appeal": false}));
            v.push(json!({"has_appeal": false, "external_route": ""}));
            v.push(json!({"has_appeal": false, "outcome": "withdrawn", "response": ""}));
            v
        }
        "response" => vec![json!({"target_date": ""})],
        "command-not-understood" => vec![json!({"reference": ""})],
        "staff-unauthenticated" => vec![json!({"case": "", "reference": ""})],
        "assigned" => vec![json!({
            "complainant_message": "I do not accept your response: the certificate was promised for 9 November in writing.",
            "stage": "formal",
        })],
        _ => vec![],
    };
    let mut all = vec![base.clone()];
    for changes in variants {
        let mut data = base.clone();
        merge(&mut data, changes);
        all.push(data);
    }
    all
}

/// The outcomes a resolution letter words differently.
pub const OUTCOMES: &[&str] = &[
    "upheld",
    "partly-upheld",
    "not-upheld",
    "unfounded",
    "unsubstantiated",
    "withdrawn",
];

const SAMPLE_BODY: &str = "I finished the Level 3 course on 12 October and was told my certificate would arrive within four weeks.\n\nIt has not arrived, and nobody has answered my two emails about it. I need it to start a new job in January.";

const SAMPLE_COMMANDS_HELP: &str = "Reply to this email; put each command on a line of its own:\n  #note TEXT        an internal note (text without a command is a note too)\n  #reply            send the text below it to the complainant\n  #hold REASON      put the case on hold\n  #resume           take it off hold\n  #close OUTCOME    close the case with a written response";

fn escalation_sample(name: &str) -> Value {
    let asked = [
        json!({"name": "Priya Shah", "title": "department head", "asked_at": "Tuesday 22 December 2026 at 09:00"}),
        json!({"name": "Mark Ellis", "title": "senior manager", "asked_at": "Wednesday 23 December 2026 at 09:00"}),
    ];
    let (rung, title, who, respond_by, window) = match name {
        "escalation-1" => (
            1,
            "department head",
            "Priya Shah",
            "Wednesday 23 December 2026 at 09:00",
            "24 hours",
        ),
        "escalation-2" => (
            2,
            "senior manager",
            "Mark Ellis",
            "Thursday 24 December 2026 at 09:00",
            "24 hours",
        ),
        _ => (
            3,
            "Managing Director",
            "Helen Ward",
            "Tuesday 29 December 2026 at 09:00",
            "one working day",
        ),
    };
    json!({
        "recipient_name": who,
        "rung": rung,
        "rung_title": title,
        "asked_before": asked[..rung - 1],
        "complainant_name": "Alice Example",
        "complainant_email": "alice@example.net",
        "subject": "My certificate has not arrived",
        "department": "Training",
        "stage": "formal",
        "received_date": "Monday 23 November 2026",
        "target_date": "Monday 21 December 2026",
        "days_overdue": rung,
        "respond_by": respond_by,
        "window": window,
        "history": [
            {"at": "Monday 23 November 2026 10:14", "who": "Alice Example", "what": "complaint received"},
            {"at": "Monday 23 November 2026 10:15", "who": "redress", "what": "acknowledgement sent"},
            {"at": "Wednesday 2 December 2026 14:30", "who": "Jane Hughes", "what": "internal note: asked the awarding body when the certificate was claimed"},
        ],
        "body": SAMPLE_BODY,
        "commands_help": SAMPLE_COMMANDS_HELP,
    })
}

/// Sets each key of `changes` (an object) in `data` (an object).
fn merge(data: &mut Value, changes: Value) {
    if let (Value::Object(data), Value::Object(changes)) = (data, changes) {
        data.extend(changes);
    }
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

    const STAFF_LETTERS: &[&str] = &[
        "escalation-1",
        "escalation-2",
        "escalation-3",
        "assigned",
        "command-not-understood",
        "complainant-wrote",
    ];
    const COMPLAINANT_LETTERS: &[&str] = &[
        "acknowledgement",
        "hold",
        "resume",
        "extension",
        "resolution",
        "response",
        "feedback-request",
    ];

    #[test]
    fn every_letter_renders_with_its_samples() {
        let t = Templates::load(None).expect("templates");
        assert_eq!(Templates::names().count(), 21);
        for name in Templates::names() {
            let samples = samples(name);
            assert!(!samples.is_empty());
            for data in &samples {
                for key in ["organisation", "mailbox", "reference", "recipient_name"] {
                    assert!(data.get(key).is_some(), "{name} sample lacks {key}");
                }
                let l = t
                    .render(name, data)
                    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
                assert!(!l.subject.is_empty(), "{name}");
                assert!(!l.text.contains("{{"), "{name}: {}", l.text);
                assert!(l.html.starts_with("<!DOCTYPE html>"), "{name}");
                assert!(l.html.trim_end().ends_with("</html>"), "{name}");
            }
        }
    }

    #[test]
    fn escalation_subjects_name_the_rung_and_carry_the_reference() {
        let t = Templates::load(None).expect("templates");
        for (rung, title) in [
            (1, "department head"),
            (2, "senior manager"),
            (3, "Managing Director"),
        ] {
            let name = format!("escalation-{rung}");
            let l = t.render(&name, &sample(&name)).expect("render");
            assert_eq!(
                l.subject,
                format!(
                    "Overdue complaint [OPP-2026-0001]: escalation {rung} of 3 to you as {title}"
                )
            );
            assert!(l.text.contains("A reply of any kind stops the escalation"));
        }
        let first = t
            .render("escalation-1", &sample("escalation-1"))
            .expect("render");
        assert!(first.text.contains("You are the first to be asked."));
        assert!(first.text.contains("1 working day overdue"));
        let last = t
            .render("escalation-3", &sample("escalation-3"))
            .expect("render");
        assert!(last
            .text
            .contains("  - Priya Shah, department head, on Tuesday"));
        assert!(last
            .text
            .contains("  - Mark Ellis, senior manager, on Wednesday"));
        assert!(last.text.contains("3 working days overdue"));
        assert!(last.text.contains("nobody further to escalate to"));
    }

    #[test]
    fn staff_letters_end_with_the_commands_and_the_internal_note_line() {
        let t = Templates::load(None).expect("templates");
        for name in STAFF_LETTERS {
            let l = t.render(name, &sample(name)).expect("render");
            let Some((_, rest)) = l.text.split_once(SAMPLE_COMMANDS_HELP) else {
                panic!("{name} lacks the commands help:\n{}", l.text);
            };
            let rest: Vec<&str> = rest.trim().lines().collect();
            assert_eq!(
                rest,
                [
                    "Internal notes never reach the complainant.",
                    "OP Performance Limited complaints desk (complaints@opp.example)"
                ],
                "{name}"
            );
        }
        let l = t.render("new-case", &sample("new-case")).expect("render");
        let help = l.text.find(SAMPLE_COMMANDS_HELP).expect("help in new-case");
        let note = l
            .text
            .find("The complainant does not see internal notes.")
            .expect("note line");
        assert!(note < help);
        assert!(l
            .html
            .contains("<pre>Reply to this email; put each command"));
    }

    #[test]
    fn complainant_letters_show_no_address_but_the_mailbox() {
        let t = Templates::load(None).expect("templates");
        for name in COMPLAINANT_LETTERS {
            for data in samples(name) {
                let l = t.render(name, &data).expect("render");
                for word in l.text.split_whitespace().filter(|w| w.contains('@')) {
                    assert_eq!(
                        word.trim_matches(|c: char| !c.is_alphanumeric()),
                        "complaints@opp.example",
                        "{name}"
                    );
                }
                assert!(!l.text.contains("internal"), "{name}");
            }
        }
    }

    #[test]
    fn made_html_escapes_and_keeps_paragraphs() {
        let html = text_to_html("Dear A <&> B,\r\n\r\nline one\nline \"two\"\n \n\n\nlast\n");
        assert_eq!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<body>\n\
             <p>Dear A &lt;&amp;&gt; B,</p>\n\
             <p>line one<br>\nline &quot;two&quot;</p>\n\
             <p>last</p>\n\
             </body>\n</html>\n"
        );

        // Through a letter with no HTML template: the values are escaped too.
        let t = Templates::load(None).expect("templates");
        let mut data = sample("hold");
        data["reason"] = json!("<script>alert(1)</script> & more");
        let l = t.render("hold", &data).expect("render");
        assert!(l.text.contains("<script>alert(1)</script> & more"));
        assert!(l
            .html
            .contains("<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>"));
        assert!(!l.html.contains("<script>"));
        assert!(l.html.contains("<p>Dear Alice Example,</p>"));
    }

    #[test]
    fn an_html_override_wins_and_partials_can_be_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("hold.html.hbs"),
            "<p>On hold: <em>{{reason}}</em></p>",
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("partials")).expect("mkdir");
        std::fs::write(
            dir.path().join("partials/staff-footer.txt.hbs"),
            "-- \n{{commands_help}}\nOur own footer.\n",
        )
        .expect("write");
        let t = Templates::load(Some(dir.path())).expect("load");
        let mut data = sample("hold");
        data["reason"] = json!("a <holiday>");
        let l = t.render("hold", &data).expect("render");
        assert_eq!(l.html, "<p>On hold: <em>a &lt;holiday&gt;</em></p>");
        assert!(
            l.text.contains("a <holiday>"),
            "the text is still the default"
        );
        // Letters with an HTML default and those without keep theirs.
        let ack = t
            .render("acknowledgement", &sample("acknowledgement"))
            .expect("render");
        assert!(ack.html.contains("<h3>What happens next</h3>"));
        let esc = t
            .render("escalation-1", &sample("escalation-1"))
            .expect("render");
        assert!(esc.text.ends_with("Our own footer.\n"), "{}", esc.text);

        // An override HTML template is held to strict mode as well.
        std::fs::write(dir.path().join("hold.html.hbs"), "<p>{{shoe_size}}</p>").expect("write");
        let err = Templates::load(Some(dir.path()))
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains("hold.html.hbs")),
            "{err:?}"
        );
    }

    #[test]
    fn resolution_words_each_outcome_differently() {
        let t = Templates::load(None).expect("templates");
        let phrases = [
            ("upheld", "We have upheld your complaint"),
            ("partly-upheld", "We have upheld part of your complaint"),
            ("not-upheld", "We have not upheld your complaint"),
            ("unfounded", "found your complaint to be unfounded"),
            ("unsubstantiated", "not been able to substantiate"),
            ("withdrawn", "we have closed it as withdrawn"),
        ];
        assert_eq!(phrases.len(), OUTCOMES.len());
        for (outcome, _) in phrases {
            let mut data = sample("resolution");
            data["outcome"] = json!(outcome);
            let l = t.render("resolution", &data).expect("render");
            assert_eq!(l.subject, "Our response to your complaint [OPP-2026-0001]");
            for (other, other_phrase) in phrases {
                assert_eq!(
                    l.text.contains(other_phrase),
                    other == outcome,
                    "{outcome} letter and the phrase for {other}:\n{}",
                    l.text
                );
            }
        }
    }

    #[test]
    fn resolution_appeal_or_final_response() {
        let t = Templates::load(None).expect("templates");
        let data = sample("resolution");
        let deadline = "Thursday 21 January 2027";
        let external = data["external_route"]
            .as_str()
            .unwrap_or_default()
            .to_string();

        let l = t.render("resolution", &data).expect("render");
        assert!(l
            .text
            .contains(&format!("reply to this email by {deadline}")));
        assert!(l.text.contains("an appeal to the Managing Director"));
        assert!(!l.text.contains("final response"));

        let mut data = data;
        data["has_appeal"] = json!(false);
        let l = t.render("resolution", &data).expect("render");
        assert!(!l.text.contains(deadline), "{}", l.text);
        assert!(!l.html.contains(deadline));
        assert!(!l.text.contains("an appeal to the Managing Director"));
        assert!(l.text.contains("This is our final response"));
        assert!(l.text.contains(&external));

        data["external_route"] = json!("");
        let l = t.render("resolution", &data).expect("render");
        assert!(l.text.contains("This is our final response"));
        assert!(!l.text.contains("outside OP Performance Limited"));
    }

    #[test]
    fn hold_with_and_without_a_date() {
        let t = Templates::load(None).expect("templates");
        let mut data = sample("hold");
        let l = t.render("hold", &data).expect("render");
        assert!(l.text.contains("the clock is paused"));
        assert!(l.text.contains("by Monday 11 January 2027"));
        data["until_date"] = json!("");
        let l = t.render("hold", &data).expect("render");
        assert!(l
            .text
            .contains("we will write to you again as soon as work resumes"));
    }

    #[test]
    fn a_missing_value_fails_in_strict_mode() {
        let t = Templates::load(None).expect("templates");
        let mut data = sample("hold");
        if let Value::Object(map) = &mut data {
            map.remove("reason");
        }
        let err = t.render("hold", &data).err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains("hold.txt.hbs")),
            "{err:?}"
        );

        // new-case now needs the commands help.
        let mut data = sample("new-case");
        if let Value::Object(map) = &mut data {
            map.remove("commands_help");
        }
        assert!(t.render("new-case", &data).is_err());

        // A value named only on the other side of a branch is caught at
        // load, because the check renders the variants too.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("hold.txt.hbs"),
            "Subject: x\n\n{{#if until_date}}{{until_date}}{{else}}{{shoe_size}}{{/if}}\n",
        )
        .expect("write");
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
