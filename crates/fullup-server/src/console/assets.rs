//! The console's style sheet and script, embedded in the binary (no CDN, no build step)
//! and served under a name that carries a hash of their content, so browsers may keep
//! them for a year and still get a new version the moment the binary changes.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::error::ConsoleError;

/// The style sheet.
const CSS: &str = include_str!("static/console.css");
/// The script: live counters and nothing a page needs to work.
const JS: &str = include_str!("static/console.js");

/// `console-HASH.css` and `console-HASH.js`, the names pages link to.
static NAMES: LazyLock<(String, String)> =
    LazyLock::new(|| (hashed("console", "css", CSS), hashed("console", "js", JS)));

fn hashed(stem: &str, ext: &str, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("{stem}-{}.{ext}", &hex::encode(digest)[..12])
}

/// The path of the style sheet.
pub fn css_path() -> String {
    format!("/console/assets/{}", NAMES.0)
}

/// The path of the script.
pub fn js_path() -> String {
    format!("/console/assets/{}", NAMES.1)
}

/// `GET /console/assets/{name}`: the asset of that (hashed) name, cached for a year.
pub async fn serve(Path(name): Path<String>) -> Result<Response, ConsoleError> {
    let (body, content_type) = if name == NAMES.0 {
        (CSS, "text/css; charset=utf-8")
    } else if name == NAMES.1 {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return Err(ConsoleError::NotFound(format!("asset {name}")));
    };
    Ok((
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response())
}
