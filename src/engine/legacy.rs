//! `POST /containers/create` with a top-level `MacAddress`, for engines older than API
//! 1.44: they read a container's MAC address only from there, and bollard's create body
//! has no such field. Used only when a target's MAC was set by the user.

use bollard::models::{ContainerCreateBody, ContainerCreateResponse};
use bollard::Docker;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};

/// Creates container `name` from `body` with `Config.MacAddress = mac`, on the same unix
/// socket and API version as `docker`. Errors take bollard's shape, so callers read them
/// the same way as any other engine error.
pub async fn create_with_mac(
    docker: &Docker,
    name: &str,
    body: &ContainerCreateBody,
    mac: &str,
) -> Result<ContainerCreateResponse, bollard::errors::Error> {
    let host = super::host();
    let Some(socket) = host.strip_prefix("unix://") else {
        return Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message: format!("a user-set MAC address can be kept on this engine (API older than 1.44) only over a unix socket, not {host}"),
        });
    };
    let mut json = serde_json::to_value(body)?;
    json["MacAddress"] = serde_json::Value::String(mac.to_string());
    let v = docker.client_version();
    let query: String = url_encode(name);
    let path = format!(
        "/v{}.{}/containers/create?name={query}",
        v.major_version, v.minor_version
    );
    let (status, bytes) = post(socket, &path, Bytes::from(serde_json::to_vec(&json)?)).await?;
    answer(status, &bytes)
}

/// An engine's answer read as `T`, or its error as bollard reports one (the engine's
/// `message`, else the body).
pub(super) fn answer<T: serde::de::DeserializeOwned>(
    status: u16,
    bytes: &[u8],
) -> Result<T, bollard::errors::Error> {
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
        return Err(bollard::errors::Error::DockerResponseServerError {
            status_code: status,
            message,
        });
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// `POST path` with a JSON `body` on the engine's unix socket: the status and the body.
async fn post(
    socket: &str,
    path: &str,
    body: Bytes,
) -> Result<(u16, Bytes), bollard::errors::Error> {
    let client: Client<UnixConnector, Full<Bytes>> = Client::unix();
    let req = hyper::Request::post(hyper::Uri::from(Uri::new(socket, path)))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .map_err(transport("build the request"))?;
    let resp = client
        .request(req)
        .await
        .map_err(transport("send the request to the engine"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(transport("read the engine's answer"))?
        .to_bytes();
    Ok((status, bytes))
}

/// A request that failed on its way, its cause kept: bollard's `IOError` holds an
/// `io::Error`, whose `source()` skips the error it wraps, so that error is wrapped in
/// this first, and `source()` walks on to the hyper (or http) error itself.
#[derive(Debug, thiserror::Error)]
#[error("could not {what}")]
struct Transport {
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

pub(super) fn transport<E>(what: &'static str) -> impl FnOnce(E) -> bollard::errors::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| {
        std::io::Error::other(Transport {
            what,
            source: Box::new(e),
        })
        .into()
    }
}

/// Percent-encodes a container name for a query string (names are `[a-zA-Z0-9_.-]`, so
/// this is only a guard).
pub(super) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[tokio::test]
    async fn a_failed_request_keeps_the_hyper_error_in_its_source_chain() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("no-engine.sock");
        let path = "/v1.41/containers/create?name=bot";
        let err = post(socket.to_str().unwrap(), path, Bytes::new())
            .await
            .unwrap_err();
        assert!(super::super::is_transport(&err), "{err:?}");
        let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
        let mut next = err.source();
        while let Some(e) = next {
            chain.push(e);
            next = e.source();
        }
        assert!(
            chain
                .iter()
                .any(|e| e.is::<hyper_util::client::legacy::Error>()),
            "{err:?}"
        );
        // The innermost cause is the socket's own error, which `describe` shows.
        assert!(
            chain.last().is_some_and(|e| e.is::<std::io::Error>()),
            "{err:?}"
        );
    }
}
