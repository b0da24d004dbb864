//! The built-in web client (`web/`): plain HTML, CSS and JavaScript modules embedded in
//! the binary and served at `/` (the page) and `/assets/…` (everything else).
//!
//! Assets are addressed under a content version (`/assets/<version>/app.js`, the version
//! being a hash of every embedded file), so they can be cached for a year: a new build
//! has a new version, and `index.html`, which names the version, is never cached without
//! revalidation. Module imports inside the scripts are relative, so they inherit the
//! versioned base. Every answer carries a strict Content-Security-Policy: no inline
//! script or style, no framing, network access only to this origin (HTTP and WebSocket).
//!
//! The module is called `web_client` because `web` is taken by `actix_web::web` in the
//! route table.

use std::sync::LazyLock;

use actix_web::{
    HttpRequest, HttpResponse, guard,
    http::header::{self, HeaderValue},
    web,
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One embedded file: its path under `web/`, its bytes and its media type.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset { path: $path, bytes: include_bytes!(concat!("../../web/", $path)), content_type: $content_type }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the client; nothing else under `/assets/` exists.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("socket.js", JS),
    asset!("store.js", JS),
    asset!("dom.js", JS),
    asset!("notify.js", JS),
    asset!("media.js", JS),
    asset!("views/auth.js", JS),
    asset!("views/shell.js", JS),
    asset!("views/chats.js", JS),
    asset!("views/chat.js", JS),
    asset!("views/mentions.js", JS),
    asset!("views/friends.js", JS),
    asset!("views/groups.js", JS),
    asset!("views/profile.js", JS),
];

/// Versioned assets never change, so browsers may keep them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page (and an asset asked for under another build's version) is revalidated on
/// every use, so a new build is picked up at once.
const REVALIDATE: &str = "no-cache";

/// The embedded client, derived once from the files compiled into the binary.
struct Client {
    /// First 16 hex digits of a SHA-256 over every file's path and bytes.
    version: String,
    /// `index.html` with its `/assets/` references pointing at `/assets/<version>/`.
    index_html: String,
}

static CLIENT: LazyLock<Client> = LazyLock::new(|| {
    let mut hasher = Sha256::new();
    for asset in ASSETS {
        hasher.update(asset.path.as_bytes());
        hasher.update([0]);
        hasher.update(asset.bytes);
    }
    let digest = hasher.finalize();
    let version: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    let page = ASSETS.iter().find(|asset| asset.path == "index.html").map_or(&[][..], |asset| asset.bytes);
    let index_html = String::from_utf8_lossy(page).replace("\"/assets/", &format!("\"/assets/{version}/"));
    Client { version, index_html }
});

/// Registers `/` and `/assets/{path}` (GET and HEAD), outside `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let get_or_head = || guard::Any(guard::Get()).or(guard::Head());
    cfg.service(web::resource("/").route(web::route().guard(get_or_head()).to(index)))
        .service(web::resource("/assets/{path:.*}").route(web::route().guard(get_or_head()).to(asset)));
}

/// The single page.
async fn index(req: HttpRequest) -> HttpResponse {
    let client = &*CLIENT;
    let etag = format!("\"{}\"", client.version);
    let unchanged = if_none_match(&req, &etag);
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response.insert_header((header::CACHE_CONTROL, REVALIDATE)).insert_header((header::ETAG, etag));
    security_headers(&mut response, &req);
    if unchanged {
        response.finish()
    } else {
        response.content_type("text/html; charset=utf-8").body(client.index_html.clone())
    }
}

/// A file of the client: `/assets/<version>/<path>`, or the bare `/assets/<path>`.
async fn asset(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let client = &*CLIENT;
    let requested = path.into_inner();
    let (cache, name) = match requested.split_once('/') {
        Some((version, rest)) if version == client.version => (IMMUTABLE, rest),
        // Another build's version (a page loaded before an upgrade): serve the current
        // file, but do not let it be cached under that name.
        Some((version, rest)) if is_version(version) => (REVALIDATE, rest),
        _ => (REVALIDATE, requested.as_str()),
    };
    let file = ASSETS
        .iter()
        .find(|asset| asset.path == name && asset.path != "index.html")
        .ok_or_else(|| ApiError::not_found("not_found", "no such asset"))?;
    let mut response = HttpResponse::Ok();
    response.content_type(file.content_type).insert_header((header::CACHE_CONTROL, cache));
    security_headers(&mut response, &req);
    Ok(response.body(file.bytes))
}

fn is_version(segment: &str) -> bool {
    segment.len() == 16 && segment.bytes().all(|b| b.is_ascii_hexdigit())
}

fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"))
}

fn security_headers(response: &mut actix_web::HttpResponseBuilder, req: &HttpRequest) {
    response
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(request_host(req))) {
        response.insert_header((header::CONTENT_SECURITY_POLICY, policy));
    }
}

/// The `Host` the page was loaded from, when it is a plain host\[:port\]; anything else
/// is left out of the policy (which then allows only `'self'`).
fn request_host(req: &HttpRequest) -> Option<&str> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    plain.then_some(host)
}

/// Scripts, styles and fonts from this origin only (no inline code), images also from
/// any HTTPS host (avatars), `data:`, and `blob:` (uploads, which the client fetches
/// with its token), network only to this origin — `ws:`/`wss:` of the same host are
/// named explicitly because older browsers do not count them as `'self'`.
fn content_security_policy(host: Option<&str>) -> String {
    let sockets = host.map(|host| format!(" ws://{host} wss://{host}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data: blob:; \
         connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_points_at_versioned_assets() {
        let client = &*CLIENT;
        assert!(is_version(&client.version));
        assert!(client.index_html.contains(&format!("/assets/{}/app.js", client.version)));
        assert!(!client.index_html.contains("\"/assets/app.js"));
    }

    #[test]
    fn the_policy_names_the_sockets_of_the_host_only() {
        let policy = content_security_policy(Some("chat.example:8080"));
        assert!(policy.contains("connect-src 'self' ws://chat.example:8080 wss://chat.example:8080;"));
        assert!(!policy.contains("unsafe-inline"));
        assert_eq!(content_security_policy(None).matches("connect-src 'self';").count(), 1);
    }

    /// A file added under `web/` but not to [`ASSETS`] would answer 404 in the browser.
    #[test]
    fn every_file_of_the_client_is_embedded() {
        fn walk(dir: &std::path::Path, prefix: &str, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("web/ is readable") {
                let entry = entry.expect("a directory entry");
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if entry.file_type().expect("a file type").is_dir() {
                    walk(&entry.path(), &format!("{name}/"), found);
                } else {
                    found.push(name);
                }
            }
        }
        let mut on_disk = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web"), "", &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|asset| asset.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "web/ and the ASSETS list differ");
    }

    #[test]
    fn no_script_is_inline_in_the_page() {
        let page = &CLIENT.index_html;
        assert!(!page.contains("<script>"), "inline script in index.html");
        assert!(!page.contains("style="), "inline style in index.html");
    }
}
