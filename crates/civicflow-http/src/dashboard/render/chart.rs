//! Charts drawn on the server as inline SVG (decision 0012, "Charts"): no chart script, no
//! inline style (the CSP forbids it), colours as presentation attributes, every text spliced
//! by maud (escaped). Each chart is an image with an accessible name and description
//! (`role="img"`, `aria-labelledby` its `<title>` and `<desc>`); the page puts a data table
//! beside it for screen readers and for reading exact numbers.

use maud::{html, Markup};

/// The chart's width in SVG units (it scales down to the page's width: `.chart`).
const WIDTH: f64 = 640.0;
/// Where the bars start (the value axis's zero).
const LEFT: f64 = 16.0;
/// The longest bar (a share of 1).
const SPAN: f64 = 520.0;
/// Room above the first bar (the axis's ticks).
const TOP: f64 = 28.0;
/// One unit's row: its name, then its bar.
const ROW: f64 = 44.0;
/// A bar's height.
const BAR: f64 = 16.0;
/// Room below the last bar (the axis's title).
const BOTTOM: f64 = 40.0;

/// Dark blue bars: 8.6:1 against the white page (WCAG's 3:1 for graphics, with room).
const BAR_FILL: &str = "#0a4fa8";
/// Text: the page's ink, 16:1.
const INK: &str = "#1b1f24";
/// Grid lines and the axis: 4.8:1.
const RULE: &str = "#6b7480";

/// One bar: who it is for, the share it shows (0 to 1; `None`: no data, drawn as no bar with
/// words saying so), and the words beside it.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    /// What the bar is for (a unit's name), written above it.
    pub label: String,
    /// An id for tests and styles (`data-key`), such as the unit's id.
    pub key: String,
    /// The share, 0 to 1 (clamped); `None`: nothing to show.
    pub value: Option<f64>,
    /// The value in words, written at the bar's end (`87.5%`, `无数据 no data`).
    pub text: String,
}

/// A horizontal bar chart of shares (0 to 100%), one bar per row, each with its label above
/// and its value at its end, ticks at 0, 25, 50, 75 and 100%, and `axis` as the value
/// axis's title. `id` makes the ids of its title and description (unique in the page).
pub(crate) fn share_bars(id: &str, title: &str, desc: &str, axis: &str, bars: &[Bar]) -> Markup {
    let rows = bars.len().max(1) as f64;
    let height = TOP + rows * ROW + BOTTOM;
    let bottom = TOP + rows * ROW;
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let ticks = [0.0_f64, 0.25, 0.5, 0.75, 1.0];
    html! {
        svg.chart id=(id) xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox=(format!("0 0 {WIDTH} {height}"))
            width=(WIDTH) height=(height)
            aria-labelledby=(format!("{title_id} {desc_id}")) {
            title id=(title_id) { (title) }
            desc id=(desc_id) { (desc) }
            // The value axis: ticks and grid lines.
            g.axis font-size="12" fill=(INK) {
                @for tick in ticks {
                    @let x = LEFT + tick * SPAN;
                    line x1=(x) x2=(x) y1=(TOP - 6.0) y2=(bottom) stroke=(RULE) stroke-width="1" stroke-dasharray=[(tick > 0.0).then_some("3 3")] {}
                    text x=(x) y=(TOP - 10.0) text-anchor="middle" { (format!("{:.0}%", tick * 100.0)) }
                }
                text x=(LEFT + SPAN / 2.0) y=(height - 12.0) text-anchor="middle" font-size="13" { (axis) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let y = TOP + i as f64 * ROW;
                g.bar data-key=(bar.key) {
                    text x=(LEFT) y=(y + 14.0) font-size="13" fill=(INK) { (bar.label) }
                    @if let Some(value) = bar.value {
                        @let width = (value.clamp(0.0, 1.0) * SPAN).max(1.0);
                        rect x=(LEFT) y=(y + 20.0) width=(format!("{width:.1}")) height=(BAR) fill=(BAR_FILL) {}
                        text x=(format!("{:.1}", LEFT + width + 6.0)) y=(y + 20.0 + BAR - 3.0) font-size="13" fill=(INK) { (bar.text) }
                    } @else {
                        text x=(LEFT) y=(y + 20.0 + BAR - 3.0) font-size="13" fill=(INK) { (bar.text) }
                    }
                }
            }
            @if bars.is_empty() {
                text x=(LEFT) y=(TOP + 20.0) font-size="13" fill=(INK) { (desc) }
            }
        }
    }
}

/// A share as people read it: `87.5%`.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: Option<f64>) -> Bar {
        Bar {
            label: label.into(),
            key: label.into(),
            value,
            text: value.map_or_else(|| "无数据 no data".into(), percent),
        }
    }

    #[test]
    fn a_chart_has_a_name_a_description_and_a_bar_per_row() {
        let svg = share_bars(
            "rates-response",
            "响应率 Response rate",
            "2026-04",
            "比率 Rate",
            &[bar("grid-1", Some(0.875)), bar("grid-2", None)],
        )
        .into_string();
        assert!(svg.contains(r#"role="img""#), "{svg}");
        assert!(
            svg.contains(r#"aria-labelledby="rates-response-title rates-response-desc""#),
            "{svg}"
        );
        assert!(svg.contains(r#"<title id="rates-response-title">响应率 Response rate</title>"#));
        assert!(svg.contains(r#"<desc id="rates-response-desc">2026-04</desc>"#));
        assert_eq!(
            svg.matches("<rect").count(),
            1,
            "no bar without data: {svg}"
        );
        assert!(svg.contains("87.5%"));
        assert!(svg.contains("无数据 no data"));
        assert!(!svg.contains("style="), "no inline style: {svg}");
        assert!(!svg.contains("<script"), "{svg}");
    }

    #[test]
    fn every_text_is_escaped() {
        let svg = share_bars(
            "x",
            "<script>alert(1)</script>",
            "a & b",
            "\"axis\"",
            &[bar("<b>unit</b>", Some(2.0))],
        )
        .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;b&gt;unit&lt;/b&gt;"), "{svg}");
        assert!(svg.contains("a &amp; b"), "{svg}");
        // A share above 1 is drawn at full length, not past the axis.
        assert!(svg.contains(r#"width="520.0""#), "{svg}");
    }
}
