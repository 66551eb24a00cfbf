//! `core::text` against real replies from the shared mail corpus
//! (`../shared/corpus/mail`, see its SOURCES.md): the quote styles of the
//! clients people actually use, parsed with the same mail-parser the intake
//! uses.
//!
//! These live here rather than beside the code because they read files, and
//! `src/core/` reads none (see `purity.rs`). Without the corpus they skip,
//! except under `CI=true`, where a missing corpus is a failure.

use crate::support::repo;
use redress::core::text::{is_forward_subject, signature, signature_phone, strip_quoted};
use std::path::{Path, PathBuf};

/// The corpus folder, or None (test skipped) when it is absent outside CI.
fn corpus() -> Option<PathBuf> {
    let dir = repo().join("../shared/corpus/mail");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the mail corpus is missing at {} and CI=true",
        dir.display()
    );
    println!(
        "corpus not found at {} (outside CI): these checks did not run",
        dir.display()
    );
    None
}

/// The readable text and Subject of one corpus message.
fn read(dir: &Path, rel: &str) -> (String, String) {
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let msg = mail_parser::MessageParser::default()
        .parse(&bytes)
        .unwrap_or_else(|| panic!("{} does not parse", path.display()));
    let body = msg
        .body_text(0)
        .unwrap_or_else(|| panic!("{} has no text", path.display()))
        .into_owned();
    (body, msg.subject().unwrap_or_default().to_string())
}

fn body(dir: &Path, rel: &str) -> String {
    read(dir, rel).0
}

/// Lines of a text whatever its line endings (LF, CRLF, a lone CR), for
/// comparing with output.
fn lines(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split(['\n', '\r'])
        .map(str::to_string)
        .collect()
}

#[test]
fn talon_replies_from_each_client_strip_to_the_new_text() {
    let Some(dir) = corpus() else { return };
    // Every one of these says "Hello" above (or, Thunderbird, below) the
    // quote; Zimbra and Sparrow leave a trailing space.
    let cases = [
        ("android.eml", "Hello"),      // Russian attribution wrapped over two lines
        ("aol.eml", "Hello"),          // -----Original Message-----
        ("apple_mail.eml", "Hello"),   // On Apr 3, 2012, at 4:19 PM, bob wrote:
        ("apple_mail_2.eml", "Hello"), // > On 22 Aug 2015, at 19:21, ... wrote:
        ("comcast.eml", "Hello "),     // ----- Original Message ----- (Zimbra)
        ("gmail.eml", "Hello"),        // On Mon, Apr 2, 2012 at 6:26 PM, ... wrote:
        ("hotmail.eml", "Hello"),      // > Subject: / > From: quoted headers
        ("iphone.eml", "Hello"),       // Sent from my iPhone + attribution
        ("outlook.eml", "Hello"),      // From:/Sent:/To:/Subject: without a rule
        ("sparrow.eml", "Hello "),     // "-- " signature, then the quote
        ("thunderbird.eml", "Hello"),  // bottom-posted below On ... wrote:
        ("yahoo.eml", "Hello"),        // ----- Original Message ----- (Yahoo)
    ];
    for (file, expected) in cases {
        let b = body(&dir, &format!("talon/standard_replies/{file}"));
        assert_eq!(strip_quoted(&b), expected, "{file}");
    }
}

#[test]
fn talon_expected_replies_are_our_text_plus_what_we_take_off() {
    let Some(dir) = corpus() else { return };
    // talon keeps the footer and the signature in its expected reply; we
    // take them off strip_quoted and hand the signature out separately.
    let iphone = body(&dir, "talon/standard_replies/iphone.eml");
    let label = std::fs::read_to_string(dir.join("talon/standard_replies/iphone_reply_text"))
        .expect("iphone_reply_text");
    assert_eq!(label.trim_end(), "Hello\n\nSent from my iPhone");
    assert!(label.starts_with(&strip_quoted(&iphone)));

    let sparrow = body(&dir, "talon/standard_replies/sparrow.eml");
    let label = std::fs::read_to_string(dir.join("talon/standard_replies/sparrow_reply_text"))
        .expect("sparrow_reply_text");
    let sig = signature(&sparrow).expect("sparrow signature");
    assert_eq!(format!("{}\n\n-- \n{sig}", strip_quoted(&sparrow)), label);
}

#[test]
fn yahoo_share_block_cuts_at_the_unquoted_attribution() {
    let Some(dir) = corpus() else { return };
    let b = body(&dir, "talon/reply-quotations-share-block.eml");
    let out = strip_quoted(&b);
    // Yahoo's HTML puts no-break spaces between sentences.
    assert!(out.starts_with("Hi Katharine."), "{out:?}");
    assert!(out.ends_with("Joe XXX"), "{out:?}");
    assert!(!out.contains("New Booking Inquiry"));
}

#[test]
fn interleaved_mailing_list_replies_keep_every_answer() {
    let Some(dir) = corpus() else { return };
    let b = body(&dir, "notmuch/lkml/cur/1382298805.004653:2,");
    assert_eq!(
        strip_quoted(&b),
        "At this point is it guaranteed that the thread won't migrate to another\n\
         CPU? If not, we should use get/put_cpu.\n\
         \n\
         We may want to set the last_VFP_context to NULL so that after resuming\n\
         (to the same thread) we force the VFP reload from the vfpstate\n\
         structure. The vfp_support_entry code ignores the reloading if the\n\
         last_VFP_context is the same as vfpstate."
    );
    assert_eq!(signature(&b), Some("Catalin"));

    let b = body(&dir, "notmuch/lkml/cur/1354585346.000541:2,");
    let out = strip_quoted(&b);
    assert!(out.starts_with("And as I said in that thread"), "{out}");
    assert!(out.ends_with("reference in this matter.)"), "{out}");
    assert_eq!(
        signature(&b).map(lines),
        Some(
            [
                "Karl Wiberg, kha@treskal.com",
                "   subrabbit.wordpress.com",
                "   www.treskal.com/kalle"
            ]
            .map(String::from)
            .to_vec()
        )
    );

    // Three answers between three quotes, "lars at ..." attribution.
    let b = body(&dir, "notmuch/default/cur/41:2,");
    let out = strip_quoted(&b);
    assert!(
        out.starts_with("Welcome, Lars!\n\nI hadn't even seen"),
        "{out}"
    );
    assert!(out.contains("It should be fixed now.\n\nNotmuch works just fine"));
    assert!(out.ends_with("Happy hacking,\n\n-Carl"), "{out}");
    assert!(!out.contains("Too many open files"));

    let b = body(&dir, "notmuch/lkml/cur/1354585346.000323:2,");
    assert_eq!(signature(&b), Some("regards\nStefan Schmidt"));
}

#[test]
fn french_and_german_attributions_above_quotes() {
    let Some(dir) = corpus() else { return };
    // "Le 29/12/2011 11:13, Allan McRae a écrit :" over nested quotes.
    let b = body(&dir, "notmuch/default/cur/52:2,");
    assert_eq!(strip_quoted(&b), "Thank you Allan");
    assert_eq!(
        signature(&b).map(lines),
        Some(
            ["François Boulogne.", "https://www.sciunto.org"]
                .map(String::from)
                .to_vec()
        )
    );
    // "--Am Montag, 26. Mai 2003 18:41 Uhr +0200 schrieb Dirk Pape" wrapped
    // before "<pape-rt@inf.fu-berlin.de>:".
    let b = body(&dir, "rt/8859-15-message-series/dir");
    let out = strip_quoted(&b);
    assert!(out.starts_with("Hello,\n\nhere is the digest"), "{out}");
    assert!(out.ends_with("the rt-system."), "{out}");
}

#[test]
fn eudora_attribution_above_nested_quotes() {
    let Some(dir) = corpus() else { return };
    // "At 14:56 02.06.2003 -0400, you wrote:" over ">>" and ">" lines.
    let b = body(&dir, "rt/new-ticket-from-iso-8859-1-full");
    let out = strip_quoted(&b);
    assert!(
        out.starts_with("Hello again,\n\nThanks for your fast replay!"),
        "{out}"
    );
    assert!(out.ends_with("&oslash; &aring; and &aerlig;"), "{out}");
    assert_eq!(signature(&b).map(str::trim_end), Some("Håvard"));
}

#[test]
fn german_outlook_and_thunderbird_replies() {
    let Some(dir) = corpus() else { return };
    // Von:/Gesendet:/An:/Cc:/Betreff: with no rule above it.
    let b = body(&dir, "zammad/mail003.box");
    let out = strip_quoted(&b);
    assert!(out.starts_with("Hallo Fritz,"), "{out}");
    assert!(
        out.contains("Mit freundlichen Grüßen\nJohn Günther"),
        "{out}"
    );
    assert!(!out.contains("Fritz Bauer"), "{out}");
    assert!(!out.contains("Betreff:"), "{out}");
    let sig = signature(&b).expect("signature");
    assert!(sig.starts_with("Mit freundlichen Grüßen"), "{sig}");

    // -----Ursprüngliche Nachricht-----
    let b = body(&dir, "zammad/mail012.box");
    let out = strip_quoted(&b);
    assert!(out.starts_with("Hallo Herr Edenhofer,"), "{out}");
    assert!(
        out.ends_with("Internet: www.example.com<http://www.example.com/>"),
        "{out}"
    );
    assert!(!out.contains("Agenda"), "{out}");

    // Thunderbird in German, bottom-posted below the quote.
    let b = body(&dir, "zammad/mail005.box");
    let out = strip_quoted(&b);
    assert!(out.starts_with("Hallo Martin,\n\nJohn und ich"), "{out}");
    assert!(out.ends_with("Grüße aus Bonn\n\nJohn & Marc"), "{out}");
    assert!(lines(&out).iter().all(|l| !l.starts_with('>')));
}

#[test]
fn html_mail_turned_into_text_and_plain_quotes() {
    let Some(dir) = corpus() else { return };
    // "Hocuri schrieb am 17.03.2021 14:25 (GMT +01:00):" with the quote
    // unprefixed after HTML-to-text.
    assert_eq!(
        strip_quoted(&body(&dir, "chatmail-core/allinkl-quote.eml")),
        "It's 1.0."
    );
    assert_eq!(
        strip_quoted(&body(&dir, "chatmail-core/quote_attach.eml")),
        "Reply"
    );
    assert_eq!(
        strip_quoted(&body(&dir, "django-helpdesk/forwarded-message.eml")),
        "This is email body"
    );
}

#[test]
fn forwards_keep_their_content() {
    let Some(dir) = corpus() else { return };
    // Gmail's "---------- Forwarded message ----------" stays, with the
    // forwarded header block and text.
    let b = body(&dir, "mikel-mail/plain_emails/raw_email8.eml");
    let out = strip_quoted(&b);
    assert!(out.starts_with(
        "We should not include these files or vcards as attachments.\n\n---------- Forwarded message ----------\nFrom: "
    ), "{out}");
    assert!(out.contains("Test attachments oddly encoded with japanese charset."));
    // GMX writes the same header block above a forward as above a reply:
    // only the Subject tells, so callers check it before stripping.
    for (file, subject) in [
        ("chatmail-core/gmx-forward.eml", "Fw: subject"),
        ("zammad/mail057.box", "W.: Invoice"),
    ] {
        let (_, s) = read(&dir, file);
        assert_eq!(s, subject);
        assert!(is_forward_subject(&s), "{file}");
    }
}

/// Every message in the corpus: no panic, the output is lines of the input
/// in order, no `>` line survives above a forward, the signature is part of
/// the body, and any phone found is in national form.
#[test]
fn whole_corpus_sweep() {
    let Some(dir) = corpus() else { return };
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::metadata(&path)
                .map(|m| m.len() < 2_000_000)
                .unwrap_or(false)
            {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut checked = 0;
    for path in &files {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let Some(msg) = mail_parser::MessageParser::default().parse(&bytes) else {
            continue;
        };
        let Some(b) = msg.body_text(0) else { continue };
        let out = strip_quoted(&b);
        let input = lines(&b);
        let mut rest = input.iter();
        for line in out.split('\n').filter(|_| !out.is_empty()) {
            assert!(
                rest.any(|l| l == line),
                "{}: {line:?} is not an input line in order",
                path.display()
            );
        }
        // Forwarded mail is kept whole, quotes and all.
        let own = lines(&out)
            .into_iter()
            .take_while(|l| {
                let l = l.to_lowercase();
                !l.contains("forward") && !l.starts_with("from:")
            })
            .collect::<Vec<_>>();
        assert!(
            own.iter().all(|l| !l.starts_with('>')),
            "{}: a quote survived:\n{out}",
            path.display()
        );
        if let Some(sig) = signature(&b) {
            assert!(b.contains(sig), "{}", path.display());
        }
        if let Some(p) = signature_phone(&b) {
            assert!(p.starts_with('0'), "{}: {p}", path.display());
        }
        checked += 1;
    }
    assert!(checked > 300, "only {checked} corpus messages were checked");
}
