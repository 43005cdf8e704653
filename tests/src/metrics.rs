//! The agent's metrics endpoint from a test's side: an HTTP GET made from
//! inside a lab namespace ([`get`]), and a strict reader of the text it
//! serves ([`Exposition::parse`]): Prometheus text 0.0.4, or OpenMetrics
//! 1.0 text when asked for it.
//!
//! The reader checks the format line by line rather than trusting the
//! encoder: every line is `# HELP name text`, `# TYPE name type`, `# UNIT
//! name unit` (OpenMetrics), `# EOF` (OpenMetrics, last and only there),
//! or a sample `name{label="value",...} value`; names and label names are
//! valid; values are numbers; every sample belongs to the family declared
//! just before it (the name itself, or the suffixes its type allows);
//! families are declared once.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use nix::sched::{CloneFlags, setns};

use crate::netns;

/// What an HTTP request got back.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// `GET path` at `addr`, from inside namespace `ns` (a thread of this
/// process enters it; the connection is made there). `accept` is sent as
/// the `Accept` header.
pub fn get(ns: &str, addr: SocketAddr, path: &str, accept: Option<&str>) -> Result<Response> {
    request(ns, addr, "GET", path, accept)
}

/// `method path` at `addr` from inside namespace `ns`, as [`get`].
pub fn request(
    ns: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    accept: Option<&str>,
) -> Result<Response> {
    let netns = File::open(netns::path(ns)).with_context(|| format!("no namespace {ns}"))?;
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    let raw = std::thread::spawn(move || -> Result<Vec<u8>> {
        setns(&netns, CloneFlags::CLONE_NEWNET).context("cannot enter the namespace")?;
        let mut stream = TcpStream::connect_timeout(&addr, crate::scaled(Duration::from_secs(5)))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(crate::scaled(Duration::from_secs(10))))?;
        stream.write_all(head.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).with_context(|| format!("reading from {addr}"))?;
        Ok(raw)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    parse_response(&raw)
}

/// A TCP listener bound to `addr` inside namespace `ns` (a port taken
/// there); it stays in that namespace however it is used.
pub fn bind_in(ns: &str, addr: SocketAddr) -> Result<TcpListener> {
    let netns = File::open(netns::path(ns)).with_context(|| format!("no namespace {ns}"))?;
    std::thread::spawn(move || -> Result<TcpListener> {
        setns(&netns, CloneFlags::CLONE_NEWNET).context("cannot enter the namespace")?;
        TcpListener::bind(addr).with_context(|| format!("cannot bind {addr}"))
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// An HTTP/1.1 response with a body of `content-length` bytes.
fn parse_response(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8(raw.to_vec()).context("the response is not UTF-8")?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut headers = BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').with_context(|| format!("bad header {line:?}"))?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    if let Some(length) = headers.get("content-length") {
        let length: usize = length.parse().context("bad content-length")?;
        ensure!(body.len() == length, "body of {} bytes, content-length {length}", body.len());
    }
    Ok(Response { status, headers, body: body.to_owned() })
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One declared family: its type and help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub kind: String,
    pub help: String,
}

/// A parsed exposition.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    /// Families by name as declared in `# TYPE`.
    pub families: BTreeMap<String, Family>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses `text` strictly (see the module documentation); `openmetrics`
    /// says which of the two formats it must be.
    pub fn parse(text: &str, openmetrics: bool) -> Result<Self> {
        let mut exposition = Self::default();
        let mut current: Option<String> = None;
        let mut help: Option<(String, String)> = None;
        let lines: Vec<&str> = text.lines().collect();
        ensure!(text.ends_with('\n'), "the exposition does not end with a newline");
        for (number, line) in lines.iter().enumerate() {
            let at = || format!("line {}: {line:?}", number + 1);
            if *line == "# EOF" {
                ensure!(openmetrics, "{}: # EOF in the Prometheus text format", at());
                ensure!(number + 1 == lines.len(), "{}: # EOF before the end", at());
                return Ok(exposition);
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                ensure!(valid_name(name), "{}: bad metric name", at());
                help = Some((name.to_owned(), text.to_owned()));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').with_context(at)?;
                ensure!(valid_name(name), "{}: bad metric name", at());
                ensure!(
                    ["counter", "gauge", "histogram", "summary", "untyped", "unknown", "info"]
                        .contains(&kind),
                    "{}: unknown type",
                    at()
                );
                let help = match help.take() {
                    Some((of, text)) if of == name => text,
                    Some((of, _)) => bail!("{}: HELP of {of} before TYPE of {name}", at()),
                    None => String::new(),
                };
                let family = Family { kind: kind.to_owned(), help };
                ensure!(
                    exposition.families.insert(name.to_owned(), family).is_none(),
                    "{}: {name} declared twice",
                    at()
                );
                current = Some(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("# UNIT ") {
                ensure!(openmetrics, "{}: # UNIT in the Prometheus text format", at());
                let (name, unit) = rest.split_once(' ').with_context(at)?;
                ensure!(name.ends_with(&format!("_{unit}")), "{}: unit is not the suffix", at());
            } else if line.starts_with('#') {
                ensure!(!openmetrics, "{}: OpenMetrics has no comments", at());
            } else {
                let sample = parse_sample(line).with_context(at)?;
                let family = current.as_deref().with_context(|| format!("{}: no TYPE", at()))?;
                let kind = &exposition.families[family].kind;
                ensure!(
                    belongs(&sample.name, family, kind, openmetrics),
                    "{}: sample of another family than {family} ({kind})",
                    at()
                );
                exposition.samples.push(sample);
            }
        }
        ensure!(!openmetrics, "OpenMetrics text must end with # EOF");
        Ok(exposition)
    }

    /// The value of the sample `name` whose labels include `labels`, when
    /// exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        let found: Vec<&Sample> = self.series(name, labels);
        match found.as_slice() {
            [one] => Ok(one.value),
            [] => bail!("no sample {name} with {labels:?}"),
            more => bail!("{} samples {name} with {labels:?}", more.len()),
        }
    }

    /// Every sample `name` whose labels include `labels`.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v)))
            .collect()
    }
}

/// Whether sample `name` may belong to family `family` of type `kind`.
fn belongs(name: &str, family: &str, kind: &str, openmetrics: bool) -> bool {
    let suffixes: &[&str] = match (kind, openmetrics) {
        ("counter", true) => &["_total", "_created"],
        ("histogram", _) => &["_bucket", "_sum", "_count", "_created"],
        ("summary", _) => &["_sum", "_count", "_created"],
        ("info", _) => &["_info"],
        _ => &[""],
    };
    suffixes.iter().any(|suffix| name.strip_suffix(suffix) == Some(family))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{label="value",...} value`, or `name value`.
fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = &line[..name_end];
    ensure!(valid_name(name), "bad metric name {name:?}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let close = closing_brace(inner).context("no closing brace")?;
        for pair in split_labels(&inner[..close])? {
            let (key, value) = pair;
            ensure!(valid_name(&key) && !key.contains(':'), "bad label name {key:?}");
            ensure!(labels.insert(key.clone(), value).is_none(), "label {key} twice");
        }
        rest = &inner[close + 1..];
    }
    let value = rest.strip_prefix(' ').context("no space before the value")?;
    ensure!(!value.contains(' '), "a timestamp or junk after the value: {value:?}");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().with_context(|| format!("bad value {number:?}"))?,
    };
    Ok(Sample { name: name.to_owned(), labels, value })
}

/// Where the label set's `}` is (outside quoted values).
fn closing_brace(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `a="x",b="y"` as pairs, with `\"`, `\\` and `\n` unescaped.
fn split_labels(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").context("a label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('"' | '\\'))) => value.push(c),
                    other => bail!("bad escape {other:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => bail!("an unterminated label value"),
            }
        };
        pairs.push((key.to_owned(), value));
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else {
            ensure!(rest.is_empty(), "junk after a label value: {rest:?}");
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS: &str = "# HELP alb_x_total Xs.\n# TYPE alb_x_total counter\n\
        alb_x_total{master=\"alb0\",slave=\"veth17\"} 3\n\
        # HELP alb_d_seconds D.\n# TYPE alb_d_seconds histogram\n\
        alb_d_seconds_bucket{le=\"+Inf\"} 1\nalb_d_seconds_sum 0.5\nalb_d_seconds_count 1\n";

    #[test]
    fn prometheus_text_is_read() {
        let exposition = Exposition::parse(PROMETHEUS, false).expect("parsed");
        assert_eq!(exposition.families["alb_x_total"].kind, "counter");
        assert_eq!(exposition.value("alb_x_total", &[("slave", "veth17")]).unwrap(), 3.0);
        assert_eq!(exposition.value("alb_d_seconds_count", &[]).unwrap(), 1.0);
        assert!(exposition.value("alb_x_total", &[("slave", "veth19")]).is_err());
        assert!(Exposition::parse(PROMETHEUS, true).is_err(), "OpenMetrics needs # EOF");
    }

    #[test]
    fn openmetrics_text_is_read() {
        let text = "# HELP alb_x Xs.\n# TYPE alb_x counter\nalb_x_total{a=\"q\\\"}\"} 3\n\
            # TYPE alb_m_bytes gauge\n# UNIT alb_m_bytes bytes\nalb_m_bytes 7\n# EOF\n";
        let exposition = Exposition::parse(text, true).expect("parsed");
        assert_eq!(exposition.value("alb_x_total", &[("a", "q\"}")]).unwrap(), 3.0);
        assert!(Exposition::parse(text, false).is_err(), "no # EOF in Prometheus text");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "alb_x 1\n",                                      // no TYPE
            "# TYPE alb_x gauge\nalb_y 1\n",                  // another family
            "# TYPE alb_x gauge\nalb_x{a=\"1\" 1\n",          // no closing brace
            "# TYPE alb_x gauge\nalb_x{a=1} 1\n",             // unquoted
            "# TYPE alb_x gauge\nalb_x one\n",                // not a number
            "# TYPE alb_x gauge\nalb_x  1\n",                 // two spaces
            "# TYPE alb_x gauge\n# TYPE alb_x gauge\n",       // twice
            "# TYPE 9x gauge\n",                              // bad name
            "# TYPE alb_x gauge\nalb_x{a=\"1\",a=\"2\"} 1\n", // label twice
            "# TYPE alb_x gauge\nalb_x 1",                    // no newline at the end
        ] {
            assert!(Exposition::parse(bad, false).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn responses_are_split() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
        let response = parse_response(raw).unwrap();
        assert_eq!((response.status, response.body.as_str()), (200, "ok"));
        assert_eq!(response.headers["content-type"], "text/plain");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok").is_err());
    }
}
