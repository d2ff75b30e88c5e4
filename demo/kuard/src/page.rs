//! The HTML page at `/`: one template embedded in the binary, filled per request.

use crate::http::Request;

/// The page template (HTML with a little plain JS).
pub const TEMPLATE: &str = include_str!("page.html");

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
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
    out
}

/// A stable colour for a version string, so versions 1, 2 and 3 look different at a glance.
pub fn version_color(version: &str) -> String {
    // FNV-1a, then a golden-ratio step so short strings ("1", "2") land far apart on the wheel.
    let mut h: u32 = 0x811c_9dc5;
    for b in version.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let hue = (u64::from(h).wrapping_mul(2_654_435_769) >> 16) % 360;
    format!("hsl({hue}, 65%, 40%)")
}

/// What a page shows besides the request.
#[derive(Debug, Clone)]
pub struct PageInfo<'a> {
    /// The app's version.
    pub version: &'a str,
    /// The host name.
    pub hostname: &'a str,
    /// The network addresses.
    pub addresses: &'a [String],
}

enum Piece {
    Lit(&'static str),
    Var(&'static str),
}

/// The template split at its `{{NAME}}` placeholders once, so a request only concatenates.
pub struct Page {
    pieces: Vec<Piece>,
}

impl Default for Page {
    fn default() -> Self {
        Page::new(TEMPLATE)
    }
}

impl Page {
    /// Splits `template`.
    pub fn new(template: &'static str) -> Page {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(i) = rest.find("{{") {
            let Some(j) = rest[i..].find("}}") else { break };
            pieces.push(Piece::Lit(&rest[..i]));
            pieces.push(Piece::Var(&rest[i + 2..i + j]));
            rest = &rest[i + j + 2..];
        }
        pieces.push(Piece::Lit(rest));
        Page { pieces }
    }

    /// Fills the page for `req`.
    pub fn render(&self, info: &PageInfo<'_>, req: &Request) -> String {
        let mut out = String::with_capacity(TEMPLATE.len() + 2048);
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(name) => match *name {
                    "VERSION" => out.push_str(&html_escape(info.version)),
                    "COLOR" => out.push_str(&version_color(info.version)),
                    "HOSTNAME" => out.push_str(&html_escape(info.hostname)),
                    "ADDRESSES" => out.push_str(&html_escape(&info.addresses.join(" "))),
                    "METHOD" => out.push_str(&html_escape(&req.method)),
                    "PATH" => {
                        out.push_str(&html_escape(&req.path));
                        if !req.query.is_empty() {
                            out.push('?');
                            out.push_str(&html_escape(&req.query));
                        }
                    }
                    "PROTO" => out.push_str(&html_escape(&req.version)),
                    "REMOTE" => {
                        out.push_str(&req.remote.map(|r| r.to_string()).unwrap_or_default())
                    }
                    "HEADERS" => {
                        for (k, v) in &req.headers {
                            out.push_str("<tr><th>");
                            out.push_str(&html_escape(k));
                            out.push_str("</th><td>");
                            out.push_str(&html_escape(v));
                            out.push_str("</td></tr>");
                        }
                    }
                    other => {
                        out.push_str("{{");
                        out.push_str(other);
                        out.push_str("}}");
                    }
                },
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let page = Page::default();
        let req = Request {
            method: "GET".into(),
            path: "/<x>".into(),
            query: "a=\"b\"".into(),
            version: "HTTP/1.1".into(),
            headers: vec![("X-Evil".into(), "<script>alert(1)</script>".into())],
            ..Request::default()
        };
        let addrs = vec!["10.88.0.2".to_string()];
        let html = page.render(
            &PageInfo {
                version: "v2",
                hostname: "abc123",
                addresses: &addrs,
            },
            &req,
        );
        assert!(html.contains("abc123") && html.contains("10.88.0.2"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>alert"));
        assert!(html.contains("/&lt;x&gt;?a=&quot;b&quot;"));
        assert!(!html.contains("{{"), "unfilled placeholder");
    }

    #[test]
    fn versions_get_distinct_colours() {
        let c: Vec<String> = ["1", "2", "3"].iter().map(|v| version_color(v)).collect();
        assert!(c[0] != c[1] && c[1] != c[2] && c[0] != c[2], "{c:?}");
        assert_eq!(version_color("1"), version_color("1"));
    }
}
