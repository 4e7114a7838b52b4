//! The engine's API version from `GET /_ping`, which answers with an `API-Version` header:
//! what the docker CLI negotiates with. bollard asks `/version`, for which the engine
//! gathers every component's version first (5 to 15 ms here, against well under 1 ms).

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};

/// The `(major, minor)` API version the engine on `socket` speaks, if its ping says.
pub async fn ping_version(socket: &str) -> Option<(usize, usize)> {
    let client: Client<UnixConnector, Empty<Bytes>> = Client::unix();
    let req = hyper::Request::get(hyper::Uri::from(Uri::new(socket, "/_ping")))
        .body(Empty::new())
        .ok()?;
    let resp = client.request(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    parse(resp.headers().get("api-version")?.to_str().ok()?)
}

fn parse(v: &str) -> Option<(usize, usize)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_versions_parse_as_major_and_minor() {
        assert_eq!(super::parse("1.41"), Some((1, 41)));
        assert_eq!(super::parse("1.45 "), Some((1, 45)));
        assert_eq!(super::parse("one.two"), None);
        assert_eq!(super::parse("1"), None);
    }
}
