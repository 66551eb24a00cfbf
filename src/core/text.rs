//! Placeholder until the reply-text module lands (same interface).

pub fn strip_quoted(body: &str) -> String {
    body.lines()
        .take_while(|l| !l.starts_with('>'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

pub fn signature_phone(_body: &str) -> Option<String> {
    None
}
