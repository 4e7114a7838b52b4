//! Answers read so that a state bollard's model does not know fails nothing: Podman names
//! a container between its process's exit and its clean-up `stopped` (Docker says
//! `exited`), in its inspect output and its listing alike, and bollard then fails the whole
//! answer: a rotation would stop at a replacement that exited, or at any such container on
//! the host while listing (the dependents scan, `--label`, recovery). Each request goes
//! through bollard; only when its answer does not fit bollard's model is it asked for again
//! here and read with the state mapped (`stopped` as `exited`, any other unknown one as
//! empty). The answer is read, never logged (an inspect holds the container's env).

use std::str::FromStr;

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum,
};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bollard::Docker;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::legacy::{answer, transport, url_encode as encode};

/// Whether bollard failed to read an answer for a value its model does not know.
fn unknown_variant(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::JsonDataError { message, .. } if message.contains("unknown variant"))
}

/// The containers `opts` asks for, whatever states the engine names.
pub async fn list_containers(
    docker: &Docker,
    opts: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    match docker.list_containers(Some(opts.clone())).await {
        Err(e) if unknown_variant(&e) => {
            let query = serde_urlencoded::to_string(&opts)
                .map_err(|e| std::io::Error::other(format!("encode the listing's query: {e}")))?;
            let mut list: Vec<Value> = again(docker, &format!("containers/json?{query}")).await?;
            for c in &mut list {
                relax(c, "/State", |s| {
                    ContainerSummaryStateEnum::from_str(s).is_ok()
                });
            }
            Ok(serde_json::from_value(Value::Array(list))?)
        }
        other => other,
    }
}

/// The inspect output of container `id`, whatever state the engine names.
pub async fn inspect_container(
    docker: &Docker,
    id: &str,
) -> Result<ContainerInspectResponse, bollard::errors::Error> {
    match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Err(e) if unknown_variant(&e) => {
            let mut info: Value = again(docker, &format!("containers/{}/json", encode(id))).await?;
            relax(&mut info, "/State/Status", |s| {
                ContainerStateStatusEnum::from_str(s).is_ok()
            });
            Ok(serde_json::from_value(info)?)
        }
        other => other,
    }
}

/// The string at `pointer` in `v` made one of those `known` accepts: `stopped` is `exited`,
/// anything else unknown is empty.
fn relax(v: &mut Value, pointer: &str, known: impl Fn(&str) -> bool) {
    if let Some(state) = v.pointer_mut(pointer) {
        let s = match state.as_str().unwrap_or("") {
            "stopped" => "exited",
            s if known(s) => s,
            _ => "",
        };
        *state = Value::String(s.to_string());
    }
}

/// `GET /vX.Y/path` at the API version agreed, read as JSON into `T`.
async fn again<T: DeserializeOwned>(
    docker: &Docker,
    path: &str,
) -> Result<T, bollard::errors::Error> {
    tracing::debug!("the engine's answer to {path} names a value bollard does not know; reading it again leniently");
    let v = docker.client_version();
    let path = format!("/v{}.{}/{path}", v.major_version, v.minor_version);
    let (status, bytes) = get(&path).await?;
    answer(status, &bytes)
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
        let mut values: Vec<Value> = serde_json::from_slice(listing).unwrap();
        for c in &mut values {
            relax(c, "/State", |s| {
                ContainerSummaryStateEnum::from_str(s).is_ok()
            });
        }
        let list: Vec<ContainerSummary> = serde_json::from_value(Value::Array(values)).unwrap();
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
    fn podmans_stopped_container_inspects_as_exited() {
        // State of a replacement that exited, from podman 4.3.1's inspect, trimmed.
        let text = r#"{"Id": "aa", "State": {"Status": "stopped", "Running": false, "ExitCode": 1,
            "Health": {"Status": "", "FailingStreak": 0, "Log": null}}}"#;
        assert!(serde_json::from_str::<ContainerInspectResponse>(text).is_err());
        let mut v: Value = serde_json::from_str(text).unwrap();
        relax(&mut v, "/State/Status", |s| {
            ContainerStateStatusEnum::from_str(s).is_ok()
        });
        let info: ContainerInspectResponse = serde_json::from_value(v).unwrap();
        let state = info.state.unwrap();
        assert_eq!(state.status, Some(ContainerStateStatusEnum::EXITED));
        assert_eq!(state.exit_code, Some(1));
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
