//! The explorer: a read-only web page every node serves on its RPC port, at `/` and
//! `/explorer/…`. Plain HTML, CSS and ES modules from `explorer/www/` in the repository,
//! built into the binary; the page uses the node's own JSON-RPC API (HTTP and WebSocket, same
//! origin) and verifies rollup batches in the browser with the TypeScript SDK's browser build
//! (`explorer/www/lockstep-sdk.js`, which `npm test` in sdk/typescript keeps in step with the
//! SDK's sources).
//!
//! Only `GET`/`HEAD` of these paths, without a WebSocket upgrade, are answered here; every
//! other request (JSON-RPC POSTs, WebSocket upgrades, other paths) goes to jsonrpsee as before.

use axum::http::{header, HeaderValue, Method, StatusCode};
use jsonrpsee::server::{HttpBody, HttpResponse};

/// The page may load scripts, styles and images from its own origin only, talk only to its
/// own origin (HTTP and WebSocket: CSP3's `'self'` covers `ws:`/`wss:` to the same host and
/// port), and run no inline code; nothing may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../../explorer/www/", $file)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/explorer/", "index.html", "text/html; charset=utf-8"),
    asset!(
        "/explorer/app.js",
        "app.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/explorer/chart.js",
        "chart.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/explorer/lockstep-sdk.js",
        "lockstep-sdk.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/explorer/style.css",
        "style.css",
        "text/css; charset=utf-8"
    ),
    asset!("/explorer/icon.svg", "icon.svg", "image/svg+xml"),
];

/// The response for `method path` if the explorer serves it; `None` hands the request on to
/// the JSON-RPC service. Call it only for requests that are not WebSocket upgrades.
pub(super) fn response(method: &Method, path: &str) -> Option<HttpResponse> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    let body = if method == Method::HEAD {
        HttpBody::from(Vec::new())
    } else {
        HttpBody::from(asset.body.to_vec())
    };
    let mut r = HttpResponse::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(asset.body.len() as u64),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The page changes with the binary: revalidate rather than keep an old one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_at_the_root_with_its_content_type_and_policy() {
        let r = response(&Method::GET, "/").unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(
            r.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert!(std::str::from_utf8(ASSETS[0].body)
            .unwrap()
            .contains("/explorer/app.js"));
    }

    #[test]
    fn serves_every_asset_the_page_names() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        let app = std::str::from_utf8(ASSETS[2].body).unwrap();
        for a in ASSETS.iter().filter(|a| a.path.len() > "/explorer/".len()) {
            let name = &a.path["/explorer/".len()..];
            assert!(
                page.contains(a.path) || app.contains(name),
                "{} is embedded but nothing loads it",
                a.path
            );
            assert!(response(&Method::GET, a.path).is_some());
        }
    }

    #[test]
    fn leaves_rpc_posts_and_other_paths_to_jsonrpsee() {
        assert!(response(&Method::POST, "/").is_none());
        assert!(response(&Method::GET, "/metrics").is_none());
        assert!(response(&Method::GET, "/explorer/../Cargo.toml").is_none());
        assert!(response(&Method::HEAD, "/explorer/app.js").is_some());
    }
}
