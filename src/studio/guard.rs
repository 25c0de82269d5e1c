//! What keeps the studio to its user: a local server that runs code on
//! request is a target for any web page the user visits.
//!
//! - `Host` must name the bound address or `localhost` (DNS rebinding);
//! - a state-changing request's `Origin`, when sent, must be the studio's own;
//! - on a non-loopback address every request needs the token, from the URL
//!   once (`?token=…`, then kept in an HttpOnly cookie), the cookie, or an
//!   `Authorization: Bearer` header (how MCP clients send it);
//! - the MCP server (`cadloop mcp --http`) also checks the `Origin` of
//!   every request, reads included, as the MCP specification asks;
//! - run ids and file paths stay inside the runs folder: no `..`, no
//!   absolute paths, no symlinks out.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The name of the cookie that carries the token.
pub const TOKEN_COOKIE: &str = "cadloop_token";

/// Who may talk to the studio.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The `host:port` values a request's Host may carry.
    hosts: Vec<String>,
    /// The origins a state-changing request may come from.
    origins: Vec<String>,
    /// Required on a non-loopback address.
    token: Option<String>,
    /// Whether reads too must come from an allowed origin (MCP).
    every_origin: bool,
    /// What the server is, for refusals: "studio" or "MCP server".
    what: &'static str,
    /// How to get the token, for a refusal without it.
    token_help: &'static str,
}

impl Guard {
    /// The guard for a server bound to `addr`; `token` when it is not loopback.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Guard {
        let port = addr.port();
        let ip = match addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let mut hosts = vec![format!("{ip}:{port}"), format!("localhost:{port}")];
        if addr.ip().is_loopback() {
            hosts.push(format!("127.0.0.1:{port}"));
        }
        hosts.dedup();
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Guard {
            hosts,
            origins,
            token,
            every_origin: false,
            what: "studio",
            token_help: "open the address cadloop serve printed",
        }
    }

    /// The guard of `cadloop mcp --http` bound to `addr`: the studio's,
    /// with the Origin of every request checked.
    pub fn for_mcp(addr: SocketAddr, token: Option<String>) -> Guard {
        Guard {
            every_origin: true,
            what: "MCP server",
            token_help: "send the token cadloop mcp printed as `Authorization: Bearer TOKEN` \
                         or use the URL it printed",
            ..Guard::new(addr, token)
        }
    }

    /// Why a request is refused, if it is.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), (StatusCode, String)> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not this {}'s address; use {}",
                    self.what, self.origins[0]
                ),
            ));
        }
        let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes_state || self.every_origin {
            if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
                if !self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                    return Err((
                        StatusCode::FORBIDDEN,
                        format!("requests from {origin} may not change anything here"),
                    ));
                }
            }
        }
        if let Some(token) = &self.token {
            let given = [
                token_in_query(query),
                token_in_cookie(headers),
                token_in_bearer(headers),
            ];
            if !given.contains(&Some(token.as_str())) {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    format!("this {} needs its token: {}", self.what, self.token_help),
                ));
            }
        }
        Ok(())
    }
}

fn token_in_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

fn token_in_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
}

fn token_in_bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The middleware: refuses what [`Guard::check`] refuses; a token given in
/// the URL is kept in an HttpOnly cookie.
pub async fn middleware(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let query = request.uri().query().map(str::to_string);
    if let Err((status, message)) =
        guard.check(request.method(), request.headers(), query.as_deref())
    {
        return (status, message).into_response();
    }
    let mut response = next.run(request).await;
    if let (Some(token), Some(given)) = (&guard.token, token_in_query(query.as_deref())) {
        if given == token {
            let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
        }
    }
    response
}

/// A run id: a folder name in the runs folder (letters, digits, `-`, `_`,
/// `.`, not starting with `.`), or `BATCH~ITEM` for the item folder
/// `BATCH/items/ITEM` of a batch or bench output.
pub fn valid_id(id: &str) -> bool {
    let name = |part: &str| {
        !part.is_empty()
            && part.len() <= 200
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match id.split_once('~') {
        Some((batch, item)) => name(batch) && name(item),
        None => name(id),
    }
}

/// The folder of a valid run id, relative to the runs folder.
pub fn id_path(id: &str) -> String {
    match id.split_once('~') {
        Some((batch, item)) => format!("{batch}/{}/{item}", crate::batch::ITEMS_DIR),
        None => id.to_string(),
    }
}

/// `relative` inside `root`, refused when it climbs out (`..`, an absolute
/// path, or a symlink that leads elsewhere) or does not exist.
pub fn inside(root: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let path = root.join(relative).canonicalize().ok()?;
    path.starts_with(&root).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn hosts_origins_and_tokens_are_checked() {
        let local = Guard::new("127.0.0.1:8420".parse().unwrap(), None);
        let ok = headers(&[(header::HOST, "localhost:8420")]);
        assert!(local.check(&Method::GET, &ok, None).is_ok());
        let rebound = headers(&[(header::HOST, "evil.example:8420")]);
        assert_eq!(
            local.check(&Method::GET, &rebound, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        let foreign = headers(&[
            (header::HOST, "127.0.0.1:8420"),
            (header::ORIGIN, "http://evil.example"),
        ]);
        assert!(
            local.check(&Method::GET, &foreign, None).is_ok(),
            "reading is not changing"
        );
        assert_eq!(
            local.check(&Method::POST, &foreign, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        let own = headers(&[
            (header::HOST, "127.0.0.1:8420"),
            (header::ORIGIN, "http://127.0.0.1:8420"),
        ]);
        assert!(local.check(&Method::POST, &own, None).is_ok());

        let remote = Guard::new("0.0.0.0:8420".parse().unwrap(), Some("s3cret".into()));
        let plain = headers(&[(header::HOST, "0.0.0.0:8420")]);
        assert_eq!(
            remote.check(&Method::GET, &plain, None).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert!(remote
            .check(&Method::GET, &plain, Some("token=s3cret"))
            .is_ok());
        assert!(remote
            .check(&Method::GET, &plain, Some("token=wrong"))
            .is_err());
        let cookie = headers(&[
            (header::HOST, "0.0.0.0:8420"),
            (header::COOKIE, "a=b; cadloop_token=s3cret"),
        ]);
        assert!(remote.check(&Method::POST, &cookie, None).is_ok());
    }

    #[test]
    fn ids_and_paths_stay_inside_the_runs_folder() {
        assert!(valid_id("block-with-hole_2"));
        assert!(valid_id("batch~item-1"));
        assert_eq!(id_path("out~a1"), "out/items/a1");
        for bad in [
            "", ".hidden", "../x", "a/b", "a b", "é", "a~", "~b", "a~b~c", "a~..",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("run/model.glb"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("run/link")).unwrap();
        let run = dir.path().join("run");
        assert!(inside(&run, "model.glb").is_some());
        for bad in ["../secret", "/etc/passwd", "link", "missing", "./model.glb"] {
            assert!(inside(&run, bad).is_none(), "{bad}");
        }
    }
}
