//! `GET /console`: the operator console, a single page whose files are embedded in the
//! binary (no build step, no CDN). It talks only to the public REST API with the bearer
//! token a person pastes, so it can never do what the API would refuse.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::app::AppState;

/// Every file of the console: (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/style.css"),
    ),
    (
        "vendor/preact.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/preact.js"),
    ),
    (
        "vendor/hooks.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/hooks.js"),
    ),
    (
        "vendor/htm.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/htm.js"),
    ),
    (
        "vendor/LICENSES.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../console/vendor/LICENSES.txt"),
    ),
];

/// Scripts and styles only from this origin, API calls only to it, no framing, no
/// inline script: a token pasted here can only be used by these files. (The other security
/// headers are the router's, `headers::security_headers`.)
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { file("index.html") }))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

fn file(name: &str) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return crate::api::error::ApiError::NotFound("no such console file".to_owned())
            .into_response();
    };
    let mut response = (StatusCode::OK, *bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
