//! What templates share: the layout, formatting, paging links and server-rendered charts.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use super::auth::Session;
use super::error::PageError;

/// The base layout's data: title, active navigation entry, the sign-out form's CSRF token.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub title: String,
    pub nav: &'static str,
    /// Set when signed in with a session cookie (the sign-out button is shown).
    pub logout_csrf: Option<String>,
    /// A one-line message after an action (from `?notice=`).
    pub notice: Option<String>,
}

impl Layout {
    pub fn new(session: &Session, title: impl Into<String>, nav: &'static str) -> Self {
        Self {
            title: title.into(),
            nav,
            logout_csrf: session
                .signed_in
                .then(|| session.csrf(&crate::domain::links::logout())),
            notice: None,
        }
    }

    pub fn bare(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    pub fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(200).collect());
        self
    }

    /// The CSS class of a navigation entry.
    pub fn nav_class(&self, entry: &str) -> &'static str {
        if self.nav == entry { "active" } else { "" }
    }
}

/// Renders a template or fails as a page error.
pub fn render<T: Template>(template: &T) -> Result<Response, PageError> {
    template
        .render()
        .map(|html| Html(html).into_response())
        .map_err(|e| PageError::BadRequest(format!("template error: {e}")))
}

/// `2026-11-25 11:50 UTC`
pub fn time(ms: i64) -> String {
    crate::store::from_ms(ms)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

pub fn time_opt(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".to_owned())
}

/// `3h 12m`, `4m 05s`, `12s`, `250ms`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86400, (s % 86400) / 3600),
    }
}

pub fn cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".to_owned()
    } else if usd >= 100.0 {
        format!("${usd:.0}")
    } else if usd >= 1.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.4}")
    }
}

pub fn short_sha(sha: &str) -> String {
    sha.chars().take(10).collect()
}

/// Only `http(s)` links are rendered as links; anything else (`javascript:` …) becomes `#`.
pub fn safe_url(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        url.trim().to_owned()
    } else {
        "#".to_owned()
    }
}

/// `page` (from 1) and `per_page` within bounds.
pub fn paging(page: Option<i64>, per_page: i64) -> (i64, i64) {
    let page = page.unwrap_or(1).clamp(1, 100_000);
    (page, (page - 1) * per_page)
}

/// Links to the neighbour pages.
#[derive(Clone, Debug, Default)]
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
}

/// A bar chart drawn as inline SVG: stacked segments per column.
#[derive(Clone, Debug)]
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub bars: Vec<Bar>,
    pub labels: Vec<AxisLabel>,
    /// The value of the tallest column, printed at the top.
    pub max_label: String,
    pub legend: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Debug)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Clone, Debug)]
pub struct AxisLabel {
    pub x: i64,
    pub text: String,
}

/// One column of a chart: its label and its stacked segments `(value, class, description)`.
pub struct Column {
    pub label: String,
    pub segments: Vec<(f64, &'static str, String)>,
}

const CHART_HEIGHT: i64 = 120;
const CHART_TOP: i64 = 14;
const CHART_LABELS: i64 = 16;

impl Chart {
    pub fn new(
        columns: &[Column],
        legend: Vec<(&'static str, &'static str)>,
        format: impl Fn(f64) -> String,
    ) -> Self {
        let column_width = 44;
        let gap = 8;
        let width = columns.len() as i64 * (column_width + gap) + gap;
        let plot = CHART_HEIGHT - CHART_TOP - CHART_LABELS;
        let max = columns
            .iter()
            .map(|c| c.segments.iter().map(|s| s.0).sum::<f64>())
            .fold(0.0_f64, f64::max);
        let mut bars = Vec::new();
        let mut labels = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            let x = gap + i as i64 * (column_width + gap);
            let mut bottom = CHART_TOP + plot;
            for (value, class, description) in &column.segments {
                if *value <= 0.0 || max <= 0.0 {
                    continue;
                }
                let h = ((value / max) * plot as f64).round().max(1.0) as i64;
                bottom -= h;
                bars.push(Bar {
                    x,
                    y: bottom,
                    w: column_width,
                    h,
                    class,
                    title: format!("{}: {description}", column.label),
                });
            }
            labels.push(AxisLabel {
                x: x + column_width / 2,
                text: column.label.clone(),
            });
        }
        Self {
            width,
            height: CHART_HEIGHT,
            bars,
            labels,
            max_label: format(max),
            legend,
        }
    }

    pub fn label_y(&self) -> i64 {
        self.height - 4
    }
}

#[cfg(test)]
mod tests {
    use super::cost;

    #[test]
    fn costs_read_as_money() {
        assert_eq!(cost(0.0), "$0");
        assert_eq!(cost(0.0123), "$0.0123");
        assert_eq!(cost(3.456), "$3.46");
        assert_eq!(cost(250.4), "$250");
    }
}
