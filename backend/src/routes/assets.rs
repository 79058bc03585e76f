//! The site's static files under `/pkg/`: the wasm bundle, its script, the stylesheets and the
//! chart library, as `cargo xtask build` wrote them with `manifest.txt` (each file's content
//! hash) and a gzip copy beside the large ones.
//!
//! The bundle and its script are linked under a name that holds their hash
//! (`vigil.<hash>.js`, `vigil.<hash>_bg.wasm`), so browsers keep them for a year and fetch
//! them again only when they change; other files are revalidated by their hash as `ETag`.
//! A browser that accepts gzip gets the gzip copy.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Caching of files whose URL holds their hash.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Caching of files whose URL does not: kept, but revalidated by `ETag` before use.
const REVALIDATE: &str = "no-cache";

/// What the site's manifest says, read once at start.
pub struct Assets {
    pkg: PathBuf,
    output_name: String,
    /// File (relative to `pkg`) → its content hash.
    hashes: HashMap<String, String>,
    /// The hash in the bundle's URL: of the script and the wasm together.
    bundle_hash: Option<String>,
}

impl Assets {
    /// Reads `<pkg>/manifest.txt`; without one (a site built otherwise), files are served as
    /// they are, revalidated by their modification time.
    pub fn load(pkg: &Path, output_name: &str) -> Self {
        let manifest = std::fs::read_to_string(pkg.join("manifest.txt")).unwrap_or_default();
        let hashes: HashMap<String, String> = manifest
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(file, hash)| (file.to_owned(), hash.trim().to_owned()))
            .collect();
        let script = hashes.get(&format!("{output_name}.js"));
        let wasm = hashes.get(&format!("{output_name}_bg.wasm"));
        let bundle_hash = match (script, wasm) {
            (Some(script), Some(wasm)) => {
                use sha2::{Digest, Sha256};
                let digest = Sha256::digest(format!("{script}{wasm}").as_bytes());
                Some(digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect())
            }
            _ => None,
        };
        Self { pkg: pkg.to_owned(), output_name: output_name.to_owned(), hashes, bundle_hash }
    }

    /// The name the pages link the bundle under (Leptos' `output_name`): `vigil.<hash>` when
    /// the manifest has the bundle's hash.
    pub fn bundle_name(&self) -> String {
        match &self.bundle_hash {
            Some(hash) => format!("{}.{hash}", self.output_name),
            None => self.output_name.clone(),
        }
    }

    /// The file a URL names, and whether the URL holds the current hash of it.
    fn resolve<'a>(&self, requested: &'a str) -> (std::borrow::Cow<'a, str>, bool) {
        if let Some(hash) = &self.bundle_hash {
            let hashed = format!("{}.{hash}", self.output_name);
            for suffix in [".js", "_bg.wasm"] {
                if requested == format!("{hashed}{suffix}") {
                    return (format!("{}{suffix}", self.output_name).into(), true);
                }
            }
            // A page rendered before the bundle changed: the file is the current one, but
            // its URL does not name it.
            if let Some(rest) = requested.strip_prefix(&format!("{}.", self.output_name))
                && let Some((_, suffix)) = rest.split_once(['.', '_'])
                && matches!(suffix, "js" | "bg.wasm")
            {
                let suffix = if suffix == "js" { ".js" } else { "_bg.wasm" };
                return (format!("{}{suffix}", self.output_name).into(), false);
            }
        }
        (requested.into(), false)
    }
}

fn content_type(file: &str) -> &'static str {
    match Path::new(file).extension().and_then(|extension| extension.to_str()) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn not_found(file: &str) -> Response {
    crate::error::HttpError::new(vigil_proto::ErrorCode::NotFound, format!("no file /pkg/{file}")).into_response()
}

/// `GET /pkg/{*file}`.
pub async fn serve(
    State(assets): State<std::sync::Arc<Assets>>,
    UrlPath(requested): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    // Only plain relative paths inside the folder.
    let safe = Path::new(&requested).components().all(|component| matches!(component, Component::Normal(_)));
    if !safe || requested.is_empty() {
        return not_found(&requested);
    }
    let (file, hashed_url) = assets.resolve(&requested);
    let path = assets.pkg.join(file.as_ref());
    let etag = match assets.hashes.get(file.as_ref()) {
        Some(hash) => Some(format!("\"{}\"", &hash[..hash.len().min(32)])),
        None => tokio::fs::metadata(&path)
            .await
            .ok()
            .and_then(|metadata| metadata.modified().ok())
            .and_then(|modified| modified.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| format!("\"{:x}-{:x}\"", since.as_secs(), since.subsec_nanos())),
    };
    let cache_control = if hashed_url { IMMUTABLE } else { REVALIDATE };
    let mut answer_headers = HeaderMap::new();
    answer_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    answer_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(etag) = etag.as_deref().and_then(|etag| HeaderValue::from_str(etag).ok()) {
        let matches =
            headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(|candidates| {
                candidates.split(',').any(|candidate| candidate.trim() == etag.to_str().unwrap_or(""))
            });
        answer_headers.insert(header::ETAG, etag);
        if matches {
            return (StatusCode::NOT_MODIFIED, answer_headers).into_response();
        }
    }
    let accepts_gzip =
        headers.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).is_some_and(|accepted| {
            accepted.split(',').any(|coding| coding.split(';').next().unwrap_or("").trim() == "gzip")
        });
    let gzip = PathBuf::from(format!("{}.gz", path.display()));
    let (body, compressed) = if accepts_gzip && let Ok(body) = tokio::fs::read(&gzip).await {
        (body, true)
    } else {
        match tokio::fs::read(&path).await {
            Ok(body) => (body, false),
            Err(_) => return not_found(&requested),
        }
    };
    answer_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
    if compressed {
        answer_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (StatusCode::OK, answer_headers, Body::from(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_bundle_names_map_to_the_files() {
        let pkg = tempfile::tempdir().unwrap();
        std::fs::write(pkg.path().join("manifest.txt"), "vigil.js aaaa\nvigil_bg.wasm bbbb\nvigil.css cccc\n").unwrap();
        let assets = Assets::load(pkg.path(), "vigil");
        let name = assets.bundle_name();
        assert!(name.starts_with("vigil.") && name.len() == "vigil.".len() + 16, "{name}");
        assert_eq!(assets.resolve(&format!("{name}.js")), ("vigil.js".into(), true));
        assert_eq!(assets.resolve(&format!("{name}_bg.wasm")), ("vigil_bg.wasm".into(), true));
        assert_eq!(assets.resolve("vigil.0123456789abcdef.js"), ("vigil.js".into(), false), "a stale hash");
        assert_eq!(assets.resolve("vigil.css"), ("vigil.css".into(), false));
        let unhashed = Assets::load(&pkg.path().join("nowhere"), "vigil");
        assert_eq!(unhashed.bundle_name(), "vigil");
    }
}
