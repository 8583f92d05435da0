//! The "Dados ERP" reference page, served at `/ui/` on the port gRPC uses: its files are
//! built into the binary (nothing is read from disk or fetched at run time), and the page
//! talks to erpsync only through IntegrationHistory over gRPC-Web, with the crm token the
//! user gives it. So everything it shows a host could show too.
//!
//! The page builds its protobuf types at run time from the contract's descriptor set,
//! served beside it (`/ui/erpsync.binpb`, the set reflection serves). Every answer carries
//! a Content-Security-Policy that allows nothing but this origin, and framing only by the
//! origins `--ui-frame-ancestors` lists. The sources and the bundle's rebuild: `ui/`,
//! `docs/ui.md`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the page is served.
const UI_PATH: &str = "/ui/";

/// Who may frame the page by default: only pages of erpsync's own origin.
pub const DEFAULT_UI_FRAME_ANCESTORS: &str = "'self'";

const INDEX_HTML: &str = include_str!("../ui/index.html");
const STYLE_CSS: &str = include_str!("../ui/style.css");
const APP_JS: &str = include_str!("../ui/dist/app.js");

/// The page's routes: `/ui` (redirected), `/ui/`, its script, its style sheet and the
/// descriptor set `descriptors` the script decodes messages with. `frame_ancestors` is
/// checked already ([`frame_ancestors_problem`]).
pub fn router(descriptors: &'static [u8], frame_ancestors: &str) -> Router {
    let csp = content_security_policy(frame_ancestors);
    let file = move |content_type: &'static str, body: &'static [u8]| {
        let csp = csp.clone();
        get(move || async move { page_file(&csp, content_type, body) })
    };
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent(UI_PATH) }))
        .route(
            UI_PATH,
            file("text/html; charset=utf-8", INDEX_HTML.as_bytes()),
        )
        .route(
            "/ui/app.js",
            file("text/javascript; charset=utf-8", APP_JS.as_bytes()),
        )
        .route(
            "/ui/style.css",
            file("text/css; charset=utf-8", STYLE_CSS.as_bytes()),
        )
        .route(
            "/ui/erpsync.binpb",
            file("application/octet-stream", descriptors),
        )
}

/// The policy every page file is served with: scripts, styles and calls from this
/// origin only, no plugins, forms or base changes, framed only by `frame_ancestors`.
fn content_security_policy(frame_ancestors: &str) -> HeaderValue {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors {frame_ancestors}"
    );
    // frame_ancestors_problem admits visible ASCII and spaces only.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn page_file(csp: &HeaderValue, content_type: &'static str, body: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, csp.clone()),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // Small files, and a new binary may change them: always revalidated.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Why `value` cannot be the page's `frame-ancestors` sources, or None when it can: one
/// or more sources separated by spaces, each `'self'`, a scheme (`https:`) or an origin
/// (`https://crm.example.com`, `https://*.example.com:8443`); or `'none'` alone.
pub fn frame_ancestors_problem(value: &str) -> Option<String> {
    let sources: Vec<&str> = value.split_ascii_whitespace().collect();
    if sources.is_empty() {
        return Some(
            "give one or more sources separated by spaces ('self', https://crm.example.com) \
             or 'none'"
                .into(),
        );
    }
    if sources.contains(&"'none'") && sources.len() > 1 {
        return Some("'none' stands alone: it forbids every framing page".into());
    }
    let bad = sources.iter().find(|s| !is_source(s))?;
    Some(format!(
        "{} is not a frame-ancestors source: use 'self', 'none', a scheme (https:) or an \
         origin (https://crm.example.com, https://*.example.com:8443)",
        crate::domain::text::excerpt(bad)
    ))
}

/// `'self'`, `'none'`, `scheme:` or `scheme://host[:port]` (host may start with `*.`).
fn is_source(source: &str) -> bool {
    if source == "'self'" || source == "'none'" {
        return true;
    }
    let scheme_ok = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    let Some((scheme, rest)) = source.split_once(':') else {
        return false;
    };
    if !scheme_ok(scheme) {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let Some(authority) = rest.strip_prefix("//") else {
        return false;
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    let port_ok = port.is_none_or(|p| {
        p == "*" || (!p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()))
    });
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_take_keywords_schemes_and_origins_only() {
        for good in [
            "'self'",
            "'none'",
            "https:",
            "'self' https://crm.example.com",
            "https://*.example.com:8443 http://localhost:3000",
        ] {
            assert_eq!(frame_ancestors_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "   ",
            "'none' 'self'",
            "'self'; script-src *",
            "https://crm.example.com/path",
            "crm.example.com",
            "'unsafe-inline'",
            "https://exa mple.com",
            "https://a..b",
            "https://a.b:99999999",
            "*",
        ] {
            assert!(frame_ancestors_problem(bad).is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_policy_names_the_configured_ancestors() {
        let csp = content_security_policy("'self' https://crm.example.com");
        let csp = csp.to_str().unwrap();
        assert!(
            csp.ends_with("frame-ancestors 'self' https://crm.example.com"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }
}
