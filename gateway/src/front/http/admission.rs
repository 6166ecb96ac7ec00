//! Which requests may reach `/mcp` at all: the `Host` (DNS rebinding) and
//! `Origin` (a web page driving a local gateway) checks, and the media
//! types. Fixed when the router is built (`allowed_hosts` and
//! `allowed_origins` are restart-only).

use http::{HeaderMap, Uri, header};

use super::refusal::Refusal;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

fn authority(text: &str) -> Option<Authority> {
    let a: http::uri::Authority = text.trim().parse().ok()?;
    Some(Authority {
        host: normalize_host(a.host()),
        port: a.port_u16(),
    })
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        /// `None` in an allowed entry: any port (`:*`).
        port: Option<u16>,
    },
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// An `Origin` value as sent (a missing port is the scheme's default).
fn origin(value: &str) -> Option<Origin> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("null") {
        return Some(Origin::Null);
    }
    let uri: Uri = value.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let a = uri.authority()?;
    let port = a.port_u16().or_else(|| default_port(&scheme));
    Some(Origin::Tuple {
        host: normalize_host(a.host()),
        scheme,
        port,
    })
}

/// An allowed entry: `scheme://host:port`, `scheme://host:*`, or
/// `scheme://host` (any port, as before).
fn allowed_origin(entry: &str) -> Option<Origin> {
    let entry = entry.trim();
    if let Some(base) = entry.strip_suffix(":*") {
        return match origin(base)? {
            Origin::Tuple { scheme, host, .. } => Some(Origin::Tuple {
                scheme,
                host,
                port: None,
            }),
            Origin::Null => None,
        };
    }
    let uri: Option<Uri> = entry.parse().ok();
    match (origin(entry)?, uri.as_ref().and_then(|u| u.port_u16())) {
        (Origin::Tuple { scheme, host, .. }, None) => Some(Origin::Tuple {
            scheme,
            host,
            port: None,
        }),
        (o, _) => Some(o),
    }
}

pub(super) struct Admission {
    /// `None`: any host.
    hosts: Option<Vec<Authority>>,
    origins: Vec<Origin>,
}

impl Admission {
    pub(super) fn new(hosts: Option<&[String]>, origins: &[String]) -> Self {
        Self {
            // An entry that is no authority (a bare IPv6 address) is a host.
            hosts: hosts.map(|h| {
                h.iter()
                    .map(|h| {
                        authority(h).unwrap_or_else(|| Authority {
                            host: normalize_host(h.trim()),
                            port: None,
                        })
                    })
                    .collect()
            }),
            origins: origins.iter().filter_map(|o| allowed_origin(o)).collect(),
        }
    }

    /// `Host` (or HTTP/2's `:authority`) and `Origin`.
    pub(super) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match headers.get(header::HOST) {
            Some(h) => h.to_str().ok().and_then(authority),
            None => uri.authority().and_then(|a| authority(a.as_str())),
        };
        let Some(host) = host else {
            return Err(Refusal::bad_request(
                "the Host header is missing or malformed",
            ));
        };
        if let Some(hosts) = &self.hosts {
            let ok = hosts
                .iter()
                .any(|a| a.host == host.host && (a.port.is_none() || a.port == host.port));
            if !ok {
                tracing::warn!(host = %host.host, "request with a Host that is not allowed (possible DNS rebinding)");
                return Err(Refusal::forbidden(
                    "the Host header is not allowed (allowed_hosts)".into(),
                ));
            }
        }
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let sent = value.to_str().ok().and_then(origin);
        let ok = sent.is_some_and(|o| {
            self.origins.iter().any(|a| match (a, &o) {
                (Origin::Null, Origin::Null) => true,
                (
                    Origin::Tuple { scheme, host, port },
                    Origin::Tuple {
                        scheme: s,
                        host: h,
                        port: p,
                    },
                ) => scheme == s && host == h && (port.is_none() || port == p),
                _ => false,
            })
        });
        if ok {
            Ok(())
        } else {
            tracing::warn!(
                "request with an Origin that is not allowed (possible cross-origin attack)"
            );
            Err(Refusal::forbidden(
                "the Origin header is not allowed (allowed_origins)".into(),
            ))
        }
    }
}

/// Media types in `Accept` with a non-zero quality.
fn accepted(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let essence = parts.next()?.trim().to_ascii_lowercase();
            let zero = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && v.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                })
            });
            (!zero).then_some(essence)
        })
}

/// A POST must accept both JSON and SSE, and send JSON.
pub(super) fn post_media(headers: &HeaderMap) -> Result<(), Refusal> {
    let (mut json, mut sse) = (false, false);
    for m in accepted(headers) {
        json |= m == "application/json";
        sse |= m == "text/event-stream";
    }
    if !(json && sse) {
        return Err(Refusal::not_acceptable(
            "the client must accept both application/json and text/event-stream",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !content_type {
        return Err(Refusal::unsupported_media(
            "Content-Type must be application/json",
        ));
    }
    Ok(())
}

/// A GET must accept SSE.
pub(super) fn get_media(headers: &HeaderMap) -> Result<(), Refusal> {
    if accepted(headers).any(|m| m == "text/event-stream") {
        Ok(())
    } else {
        Err(Refusal::not_acceptable(
            "the client must accept text/event-stream",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    fn loopback() -> Admission {
        let hosts = ["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let origins = [
            "http://localhost:*".to_string(),
            "https://app.example".into(),
            "https://x.example:8443".into(),
        ];
        Admission::new(Some(&hosts), &origins)
    }

    fn ok(h: &[(&str, &str)]) -> bool {
        loopback()
            .check(&Uri::from_static("/mcp"), &headers(h))
            .is_ok()
    }

    #[test]
    fn hosts_and_origins_must_be_allowed() {
        assert!(ok(&[("host", "localhost:8080")]));
        assert!(ok(&[("host", "[::1]:1")]));
        assert!(!ok(&[("host", "evil.example")]));
        assert!(!ok(&[]));
        assert!(ok(&[
            ("host", "127.0.0.1"),
            ("origin", "http://localhost:3000")
        ]));
        assert!(ok(&[
            ("host", "127.0.0.1"),
            ("origin", "https://app.example:9")
        ]));
        assert!(ok(&[
            ("host", "127.0.0.1"),
            ("origin", "https://x.example:8443")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1"),
            ("origin", "https://x.example")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "127.0.0.1"), ("origin", "null")]));
        assert!(!ok(&[("host", "127.0.0.1"), ("origin", "garbage")]));
        let any = Admission::new(None, &[]);
        assert!(
            any.check(&Uri::from_static("/"), &headers(&[("host", "a.b")]))
                .is_ok()
        );
    }

    #[test]
    fn media_types_follow_the_transport() {
        let both = [
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert!(post_media(&headers(&both)).is_ok());
        let zero = [
            ("accept", "application/json, text/event-stream;q=0"),
            ("content-type", "application/json"),
        ];
        assert!(post_media(&headers(&zero)).is_err());
        let text = [
            ("accept", "application/json, text/event-stream"),
            ("content-type", "text/plain"),
        ];
        assert!(post_media(&headers(&text)).is_err());
        assert!(get_media(&headers(&[("accept", "text/event-stream;q=0.5")])).is_ok());
        assert!(get_media(&headers(&[("accept", "application/json")])).is_err());
    }
}
