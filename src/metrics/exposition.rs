//! The two text formats `/metrics` speaks. prometheus-client writes
//! OpenMetrics 1.0, which Prometheus asks for first; anything that does not
//! ask for it (curl, older scrapers, text-format parsers) gets the classic
//! Prometheus text format 0.0.4, converted from the same rendering.

/// A format a scraper can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// OpenMetrics when the `Accept` header prefers it (or ties), as
    /// Prometheus's does; the classic format otherwise, and without a header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let quality = |wanted: &str| -> Option<f32> {
            accept?
                .split(',')
                .filter_map(|range| {
                    let mut parts = range.split(';').map(str::trim);
                    let media = parts.next()?;
                    if !media.eq_ignore_ascii_case(wanted) {
                        return None;
                    }
                    let q = parts
                        .find_map(|p| p.strip_prefix("q="))
                        .map_or(Some(1.0), |q| q.parse::<f32>().ok())?;
                    Some(q)
                })
                .reduce(f32::max)
        };
        let open_metrics = quality("application/openmetrics-text").unwrap_or(0.0);
        let text = quality("text/plain").unwrap_or(0.0);
        match open_metrics > 0.0 && open_metrics >= text {
            true => Format::OpenMetrics,
            false => Format::PrometheusText,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// `open_metrics` (as rendered) in this format.
    pub fn encode(self, open_metrics: String) -> String {
        match self {
            Format::OpenMetrics => open_metrics,
            Format::PrometheusText => to_prometheus_text(&open_metrics),
        }
    }
}

/// Rewrites an OpenMetrics exposition in the 0.0.4 text format: families are
/// named as their samples are (a counter `x` becomes `x_total`, an info `x`
/// the gauge `x_info`), and what 0.0.4 lacks goes (UNIT lines, `_created`
/// samples, exemplars, the closing `# EOF`).
fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // HELP comes before TYPE, and its name depends on the type.
    let mut help: Option<(&str, &str)> = None;
    let mut counters: Vec<&str> = Vec::new();
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, &mut help, None);
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => {
                    counters.push(name);
                    (format!("{name}_total"), "counter")
                }
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                _ => (name.to_string(), "untyped"),
            };
            flush_help(&mut out, &mut help, Some(&name));
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with('#') {
            flush_help(&mut out, &mut help, None);
        } else if !line.is_empty() {
            flush_help(&mut out, &mut help, None);
            let sample = without_exemplar(line);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            let created = name
                .strip_suffix("_created")
                .is_some_and(|family| counters.contains(&family));
            if !created {
                out.push_str(sample);
                out.push('\n');
            }
        }
    }
    flush_help(&mut out, &mut help, None);
    out
}

/// A sample line up to its exemplar (` # {...} value`), which may follow the
/// value; a `#` inside a quoted label value is not one.
fn without_exemplar(sample: &str) -> &str {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in sample.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted && sample[..i].ends_with(' ') => return sample[..i].trim_end(),
            _ => {}
        }
    }
    sample
}

/// Writes a held HELP line, under `name` when the TYPE line renamed it.
fn flush_help(out: &mut String, help: &mut Option<(&str, &str)>, name: Option<&str>) {
    if let Some((original, text)) = help.take() {
        let name = name.unwrap_or(original);
        out.push_str(&format!("# HELP {name} {text}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_open_metrics_and_everyone_else_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.1")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
    }

    #[test]
    fn open_metrics_becomes_the_classic_text_format() {
        let open_metrics = "\
# HELP quire_http_requests HTTP requests answered.
# TYPE quire_http_requests counter
quire_http_requests_total{route=\"page\",status=\"2xx\"} 5
quire_http_requests_created{route=\"page\",status=\"2xx\"} 1700000000.0
# HELP quire_http_request_duration_seconds Time to answer.
# TYPE quire_http_request_duration_seconds histogram
# UNIT quire_http_request_duration_seconds seconds
quire_http_request_duration_seconds_sum 0.5
quire_http_request_duration_seconds_count 2
quire_http_request_duration_seconds_bucket{le=\"+Inf\"} 2 # {trace_id=\"a\"} 0.3
# HELP quire_build Version of the running binary.
# TYPE quire_build info
quire_build_info{version=\"0.1.0\"} 1
# TYPE quire_open_connections gauge
quire_open_connections{listener=\"https\"} 3
# TYPE quire_tls_handshake_failures counter
quire_tls_handshake_failures_total{reason=\"a \\\" # b\"} 1
# EOF
";
        let expected = "\
# HELP quire_http_requests_total HTTP requests answered.
# TYPE quire_http_requests_total counter
quire_http_requests_total{route=\"page\",status=\"2xx\"} 5
# HELP quire_http_request_duration_seconds Time to answer.
# TYPE quire_http_request_duration_seconds histogram
quire_http_request_duration_seconds_sum 0.5
quire_http_request_duration_seconds_count 2
quire_http_request_duration_seconds_bucket{le=\"+Inf\"} 2
# HELP quire_build_info Version of the running binary.
# TYPE quire_build_info gauge
quire_build_info{version=\"0.1.0\"} 1
# TYPE quire_open_connections gauge
quire_open_connections{listener=\"https\"} 3
# TYPE quire_tls_handshake_failures_total counter
quire_tls_handshake_failures_total{reason=\"a \\\" # b\"} 1
";
        assert_eq!(to_prometheus_text(open_metrics), expected);
    }
}
