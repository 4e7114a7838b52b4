//! `GET /containers/json`, read so that one container in a state bollard's model does not
//! know cannot fail the whole listing: Podman lists a container between its process's exit
//! and its clean-up as `stopped` (Docker says `exited`), and a rotation that lists
//! containers (the dependents scan, `--label`, recovery) would stop at any such container on
//! the host. The listing goes through bollard; only when its answer does not fit bollard's
//! model is it asked for again here and read with the states mapped (`stopped` as
//! `exited`, any other unknown one as empty).

use std::str::FromStr;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};
use serde_json::Value;

use super::legacy::transport;

/// The containers `opts` asks for, whatever states the engine names.
pub async fn list_containers(
    docker: &Docker,
    opts: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    match docker.list_containers(Some(opts.clone())).await {
        Err(bollard::errors::Error::JsonDataError { message, .. })
            if message.contains("unknown variant") =>
        {
            tracing::debug!("the container list names a state bollard does not know ({message}); reading it leniently");
            let query = serde_urlencoded::to_string(&opts)
                .map_err(|e| std::io::Error::other(format!("encode the listing's query: {e}")))?;
            let v = docker.client_version();
            let path = format!(
                "/v{}.{}/containers/json?{query}",
                v.major_version, v.minor_version
            );
            let (status, bytes) = get(&path).await?;
            if !(200..300).contains(&status) {
                return Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: status,
                    message: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
            Ok(lenient(&bytes)?)
        }
        other => other,
    }
}

/// The listing with each container's `State` made one bollard knows.
fn lenient(bytes: &[u8]) -> Result<Vec<ContainerSummary>, serde_json::Error> {
    let mut list: Vec<Value> = serde_json::from_slice(bytes)?;
    for c in &mut list {
        if let Some(state) = c.get_mut("State") {
            let known = match state.as_str().unwrap_or("") {
                "stopped" => "exited",
                s if ContainerSummaryStateEnum::from_str(s).is_ok() => s,
                _ => "",
            };
            *state = Value::String(known.to_string());
        }
    }
    serde_json::from_value(Value::Array(list))
}

/// `GET path` on the engine `DOCKER_HOST` names (a unix socket or plain TCP, the ones a
/// socket proxy is reached by): the status and the body.
async fn get(path: &str) -> Result<(u16, Bytes), bollard::errors::Error> {
    let host = super::host();
    let resp = if let Some(socket) = host.strip_prefix("unix://") {
        let client: Client<UnixConnector, Empty<Bytes>> = Client::unix();
        let req = hyper::Request::get(hyper::Uri::from(Uri::new(socket, path)))
            .body(Empty::new())
            .map_err(transport("build the request"))?;
        client.request(req).await
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let req = hyper::Request::get(format!("http://{addr}{path}"))
            .body(Empty::new())
            .map_err(transport("build the request"))?;
        client.request(req).await
    } else {
        return Err(std::io::Error::other(format!(
            "the engine's container list names a state this client does not know, and it can be read again only over a unix socket or plain TCP, not {host}"
        ))
        .into());
    };
    let resp = resp.map_err(transport("send the request to the engine"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(transport("read the engine's answer"))?
        .to_bytes();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_stopped_state_is_read_as_exited_and_an_unknown_one_as_empty() {
        // Trimmed from podman 4.3.1's `GET /containers/json?all=true`.
        let listing = br#"[
            {"Id": "aa", "Names": ["/bot"], "State": "stopped", "Status": "Exited (0) Less than a second ago", "Labels": {"k": "v"}},
            {"Id": "bb", "Names": ["/side"], "State": "running", "Status": "Up 2 seconds"},
            {"Id": "cc", "Names": ["/odd"], "State": "frozen"}]"#;
        assert!(serde_json::from_slice::<Vec<ContainerSummary>>(listing).is_err());
        let list = lenient(listing).unwrap();
        let states: Vec<_> = list.iter().map(|c| c.state).collect();
        assert_eq!(
            states,
            [
                Some(ContainerSummaryStateEnum::EXITED),
                Some(ContainerSummaryStateEnum::RUNNING),
                Some(ContainerSummaryStateEnum::EMPTY)
            ]
        );
        assert_eq!(list[0].names.as_deref(), Some(&["/bot".to_string()][..]));
        assert_eq!(list[0].labels.as_ref().unwrap()["k"], "v");
    }

    #[test]
    fn the_query_is_the_one_bollard_sends() {
        let mut filters = std::collections::HashMap::new();
        filters.insert("label", vec!["a=b"]);
        let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let q = serde_urlencoded::to_string(&opts).unwrap();
        assert!(q.contains("all=true"), "{q}");
        assert!(
            q.contains("filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"),
            "{q}"
        );
    }
}
