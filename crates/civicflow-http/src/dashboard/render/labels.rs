//! Words on the pages: Chinese first with English beside it, as the workflow definitions and
//! the API's labels are written.

use maud::{html, Markup};

/// A label in both languages: `<span lang="zh-CN">…</span> <span lang="en">…</span>`, so that
/// a screen reader reads each part in its own language.
pub(crate) fn bi(zh: &str, en: &str) -> Markup {
    html! { span lang="zh-CN" { (zh) } " " span lang="en" { (en) } }
}

/// A role's name for people, from the one table of role names (`roles::NAMES`, which
/// `GET /api/v1/roles` shows too).
pub(crate) fn role(role: &str) -> Markup {
    civicflow_core::domain::org::roles::NAMES
        .iter()
        .find(|(id, _)| *id == role)
        .map_or_else(|| html! { (role) }, |(_, name)| named(name))
}

/// A workflow's name or a stage's, as its definition writes it ("受理 received"): the Chinese
/// part and the English part, each in its language when the text has both.
pub(crate) fn named(text: &str) -> Markup {
    match text.split_once(' ') {
        Some((zh, en)) if !zh.is_ascii() && en.is_ascii() => bi(zh, en),
        _ => html! { (text) },
    }
}

/// A moment as people read it in the calendar's zone (`2026-04-14 09:30`), in a `<time>`
/// element that carries the whole RFC 3339 time.
pub(crate) fn time(zone: &civicflow_core::calendar::Zone, at: civicflow_core::Timestamp) -> Markup {
    let full = zone.format(at);
    let short: String = full.chars().take(16).collect::<String>().replace('T', " ");
    html! { time datetime=(full) { (short) } }
}
