//! Markdown written on the forge (comments, Forgehand's own progress comment) as HTML for the
//! dashboard: rendered by pulldown-cmark, then sanitized by ammonia, so what a stranger wrote
//! on an issue cannot run script or restyle the page.

use pulldown_cmark::{Options, Parser, html};

/// Safe HTML for `markdown`: GitHub-flavoured tables, strikethrough and task lists; raw HTML
/// and links are kept only where ammonia deems them inert (no `on*` handlers, no `javascript:`
/// URLs), every link opens with `rel="noopener noreferrer"`.
pub fn to_html(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut rendered = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut rendered, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        // An image would make every viewer's browser fetch what a stranger chose.
        .rm_tags(&["img"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&rendered)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn renders_markdown() {
        let html =
            to_html("**Done**: see [the run](https://forgehand.example/runs/4).\n\n- a\n- b");
        assert!(html.contains("<strong>Done</strong>"), "{html}");
        assert!(html.contains("<li>a</li>"), "{html}");
        assert!(
            html.contains("href=\"https://forgehand.example/runs/4\""),
            "{html}"
        );
    }

    #[test]
    fn hostile_html_is_inert() {
        let html = to_html(
            "<img src=x onerror=alert(1)> [x](javascript:alert(2)) <script>alert(3)</script>\
             <!-- forgehand:progress -->",
        );
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        // Hidden markers (Forgehand's own progress comment) stay hidden.
        assert!(!html.contains("forgehand:progress"), "{html}");
    }
}
