//! A call the socket refused (HTTP 403 from a filtering proxy or an authorization plugin,
//! 405 from a proxy that knows the path but not the method): a configuration error, not
//! an outage. It names the method, the path and what to allow, is never retried, and the
//! rotation ends `bad_target` (exit 4) with every container as it was.

use super::api::Endpoint;

/// The socket refused `endpoint`.
#[derive(Debug, thiserror::Error)]
#[error("the socket proxy refused {} {} ({status}): {}", .endpoint.method, .endpoint.path, .endpoint.allow)]
pub struct Refused {
    /// The call refused.
    pub endpoint: Endpoint,
    /// 403 or 405.
    pub status: u16,
    /// The engine's (or proxy's) answer.
    #[source]
    pub source: bollard::errors::Error,
}

/// Whether `e` is a refusal (403 or 405), not an outage or an answer about the object.
pub fn is_refusal(e: &bollard::errors::Error) -> bool {
    matches!(super::status_of(e), Some(403) | Some(405))
}

/// `e` as a [`Refused`] of `endpoint` if it is a refusal, else `e` unchanged.
pub fn refused(
    endpoint: Endpoint,
    e: bollard::errors::Error,
) -> Result<Refused, bollard::errors::Error> {
    match super::status_of(&e) {
        Some(status @ (403 | 405)) => Ok(Refused {
            endpoint,
            status,
            source: e,
        }),
        _ => Err(e),
    }
}

/// Whether anything in `e`'s source chain is a refusal: a [`Refused`] or an engine
/// answer of 403 or 405 (a call not wrapped with its endpoint).
pub fn in_chain(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<Refused>()
            || c.downcast_ref::<bollard::errors::Error>()
                .is_some_and(is_refusal)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status_code: u16) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: "Request forbidden by administrative rules.".into(),
        }
    }

    #[test]
    fn a_403_names_the_method_the_path_and_what_to_allow() {
        let r = refused(super::super::api::EXEC_CREATE, answer(403)).unwrap();
        assert_eq!(
            r.to_string(),
            "the socket proxy refused POST /containers/{id}/exec (403): allow exec, or run without --verify-exec"
        );
        assert!(in_chain(&r));
        assert!(!super::super::is_transport(&r.source), "never an outage");
    }

    #[test]
    fn other_answers_are_not_refusals() {
        for status in [400, 404, 409, 500] {
            assert!(refused(super::super::api::INSPECT, answer(status)).is_err());
            assert!(!in_chain(&answer(status)));
        }
        assert!(in_chain(&answer(405)));
    }
}
