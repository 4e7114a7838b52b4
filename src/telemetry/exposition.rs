//! Which text format `/metrics` answers in, from the request's `Accept` header: OpenMetrics
//! 1.0.0 to a scraper that asks for it (Prometheus does, first), the classic Prometheus text
//! format 0.0.4 to every other (no `Accept`, `*/*`, `text/plain`: `promtool check metrics`,
//! older agents, hosted collectors).
//!
//! Both carry the same series under the same names and labels; they differ in syntax only
//! (the classic format has no `# EOF`, no `# UNIT`, no `info` type: the build info is a
//! gauge `token_rotator_build_info` with value 1; a counter's HELP and TYPE name it with its
//! `_total`). Both are written by `prometheus-client` from the same registry.

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Classic,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// The format to answer a request whose `Accept` header is `accept` (`None`: it has
    /// none) in.
    ///
    /// As Prometheus's Go client decides: of the media ranges that name one of the two
    /// formats (`application/openmetrics-text`, `text/plain`; any version, any parameter),
    /// the one with the highest `q` wins, the first listed on a tie. A range with `q=0` (or
    /// a `q` that is no number) refuses its format. Wildcards (`*/*`, `text/*`) and every
    /// other type choose nothing: the answer is then the classic format, which every
    /// scraper reads.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f32, Format)> = None;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                Format::OpenMetrics
            } else if media.eq_ignore_ascii_case("text/plain") {
                Format::Classic
            } else {
                continue;
            };
            let Some(q) = quality(parts) else { continue };
            if q > 0.0 && best.map_or(true, |(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Classic, |(_, f)| f)
    }
}

/// The `q` among a media range's parameters (1 without one); `None` when it is no number
/// from 0 to 1.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            return value
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q));
        }
    }
    Some(1.0)
}

#[cfg(test)]
mod tests {
    use super::Format::{Classic, OpenMetrics};
    use super::*;

    /// What Prometheus 2.x sends.
    const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn prometheus_gets_openmetrics() {
        assert_eq!(Format::negotiate(Some(PROMETHEUS)), OpenMetrics);
        // Prometheus 3 adds an escaping scheme.
        let v3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                  application/openmetrics-text;version=0.0.1;q=0.5,\
                  text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
                  text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(v3)), OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text ; Version=1.0.0")),
            OpenMetrics
        );
    }

    #[test]
    fn everyone_else_gets_the_classic_format() {
        for accept in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            Some("application/json"),
            Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"),
            Some("garbage;;;,,"),
        ] {
            assert_eq!(Format::negotiate(accept), Classic, "{accept:?}");
        }
    }

    #[test]
    fn q_values_decide() {
        let cases = [
            (
                "text/plain;q=0.2, application/openmetrics-text;q=0.3",
                OpenMetrics,
            ),
            ("application/openmetrics-text;q=0.5, text/plain", Classic),
            ("application/openmetrics-text;q=0", Classic),
            (
                "application/openmetrics-text;q=0.0, text/plain;q=0.1",
                Classic,
            ),
            ("application/openmetrics-text;q=zero", Classic),
            ("application/openmetrics-text;q=2", Classic),
            ("application/openmetrics-text;q=0.1, */*", OpenMetrics),
            (
                "application/openmetrics-text ; q = 0.9 , text/plain ; q = 0.8",
                OpenMetrics,
            ),
            // A tie: the first listed.
            ("text/plain, application/openmetrics-text", Classic),
            ("application/openmetrics-text, text/plain", OpenMetrics),
            (
                "text/plain;q=0.5, application/openmetrics-text;q=0.5",
                Classic,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(Some(accept)), want, "{accept}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Classic.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
