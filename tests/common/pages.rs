//! For the dashboard's page tests: form bodies as a browser sends them, and the log's head
//! (a refused form writes nothing).

use super::service::DemoService;

/// A form value (or name), percent-encoded as `application/x-www-form-urlencoded`.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form body of `pairs`, percent-encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The log's head position (`None`: an empty log).
pub fn head(demo: &DemoService) -> Option<u64> {
    demo.service.engine().log().head().map(|h| h.position.get())
}
