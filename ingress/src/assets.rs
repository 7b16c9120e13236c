//! The demo page: `frontend/` embedded into the binary with rust-embed and served at `/`,
//! with content types, ETag revalidation, and the security headers every answer carries.
//!
//! Asset names are not content-hashed, so every asset is `Cache-Control: no-cache`: browsers
//! keep it but ask again with `If-None-Match`, and an unchanged file costs a 304 with no body.
//! ETags are weak because the compression layer may re-encode the body.
//!
//! In debug builds rust-embed reads the files from disk at request time, so editing
//! `frontend/` needs no rebuild; release builds carry them inside the binary.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use crate::error::ApiError;

/// Only same-origin scripts, styles, images and fetches; no inline script, no plugins, no
/// framing. The demo page is built to run under exactly this policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers set on every answer of the ingress, the API's included.
pub fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

#[derive(Embed)]
#[folder = "../frontend/"]
struct Frontend;

/// Fallback handler: the asset at the request path (`/` is `index.html`), or 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    let name = match uri.path() {
        "/" => "index.html",
        path => path.strip_prefix('/').unwrap_or(path),
    };
    if !is_plain_asset_name(name) {
        return Err(ApiError::NotFound);
    }
    let file = Frontend::get(name).ok_or(ApiError::NotFound)?;
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }

    let etag = weak_etag(&file.metadata.sha256_hash());
    let caching = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if if_none_match_hits(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, caching).into_response());
    }

    let body = match file.data {
        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        Cow::Owned(bytes) => Bytes::from(bytes),
    };
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    )];
    Ok((caching, content_type, Body::from(body)).into_response())
}

/// Asset names are plain relative paths of letters, digits, `-`, `_`, `.` and `/`, with no
/// `.`/`..` segments; anything else cannot name an embedded file, so it is not looked up.
fn is_plain_asset_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./".contains(&byte))
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// The content type for a file name, by extension. JavaScript must be served as JavaScript:
/// with `nosniff`, browsers refuse module scripts of any other type.
fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn weak_etag(sha256: &[u8; 32]) -> HeaderValue {
    let hex: String = sha256[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    HeaderValue::from_str(&format!("W/\"{hex}\"")).expect("hex digits are a valid header value")
}

/// `If-None-Match` with weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag equal to
/// ours once the `W/` prefixes are ignored.
fn if_none_match_hits(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = opaque_tag(etag.to_str().unwrap_or_default());
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || opaque_tag(tag) == ours)
}

fn opaque_tag(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_with_traversal_or_odd_bytes_are_not_looked_up() {
        for name in ["index.html", "app.js", "icons/favicon.svg"] {
            assert!(is_plain_asset_name(name), "{name}");
        }
        for name in [
            "",
            "../Cargo.toml",
            "a/../b",
            "./index.html",
            "a//b",
            "%2e%2e/x",
            "a\\b",
        ] {
            assert!(!is_plain_asset_name(name), "{name}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let hit = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            if_none_match_hits(&headers, &etag)
        };
        assert!(hit("W/\"abc\""));
        assert!(hit("\"abc\""));
        assert!(hit("\"x\", W/\"abc\""));
        assert!(hit("*"));
        assert!(!hit("W/\"abd\""));
        assert!(!if_none_match_hits(&HeaderMap::new(), &etag));
    }
}
