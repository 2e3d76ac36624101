//! Security headers on every response: no MIME sniffing, no framing, no referrer, a
//! content security policy (the console sets its own; `/docs` gets one Swagger UI works
//! under; everything else, JSON and text, may load nothing), and `Cache-Control: no-store`
//! on `/v1/*`, whose answers carry match ids and audit details no cache should keep.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// For API answers (JSON, problem documents, metrics): nothing may load or frame them.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// For Swagger UI under `/docs`: its scripts and styles from this origin (it sets inline
/// styles), its icons as data URIs, the document and "Try it out" calls to this origin.
pub const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Middleware: the headers above, on every response whatever produced it.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let docs = path == "/docs" || path.starts_with("/docs/");
    let api = path == "/v1" || path.starts_with("/v1/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = if docs { DOCS_POLICY } else { API_POLICY };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
    }
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
