//! TLS and mTLS to providers: real handshakes over TCP between the gateway
//! and a provider built with the SDK, with certificates from
//! `mcp_gateway::certs` (what `mcp-gateway certs` writes).

use std::{path::Path, sync::Arc, time::Duration};

use mcp_gateway::certs::{self, Bundle, Options};
use mcp_provider_sdk::TlsConfig;
use serde_json::{Value, json};

use crate::common::*;

fn bundle(expired_server: bool) -> Bundle {
    certs::generate(&Options {
        expired_server,
        ..Default::default()
    })
    .unwrap()
}

/// The kit provider serving TLS with `b`'s server certificate; with
/// `require_client`, only clients with a certificate from `b`'s CA.
async fn tls_kit(b: &Bundle, require_client: bool) -> mcp_provider_sdk::RunningProvider {
    let tls = TlsConfig::from_pem(
        b.server_cert.clone(),
        b.server_key.clone(),
        require_client.then(|| b.ca_cert.clone()),
    );
    spawn_on(kit(Arc::default()).tls(tls), "127.0.0.1:0").await
}

fn tls_yaml(port: u16, dir: &Path, client_cert: bool, server_name: Option<&str>) -> String {
    let mut tls = format!("{{ ca: {}/ca.pem", dir.display());
    if client_cert {
        tls.push_str(&format!(
            ", cert: {d}/client.pem, key: {d}/client.key",
            d = dir.display()
        ));
    }
    if let Some(n) = server_name {
        tls.push_str(&format!(", server_name: {n}"));
    }
    tls.push_str(" }");
    format!(
        "discovery:\n  retry_interval: 200ms\n  retry_max: 500ms\n  refresh_interval: 500ms\nshutdown_grace: 2s\nproviders:\n  - name: kit\n    endpoint: https://127.0.0.1:{port}\n    pool_size: 2\n    tls: {tls}\n"
    )
}

async fn provider_status(gw: &TestGateway) -> Value {
    let ready: Value = gw.ready().await;
    ready["providers"][0].clone()
}

/// Waits until the provider's /ready entry satisfies `f`.
async fn wait_status(gw: &TestGateway, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..50 {
        last = provider_status(gw).await;
        if f(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("provider status never matched: {last}");
}

fn last_error(s: &Value) -> String {
    s["last_error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn mtls_provider_is_called_with_the_gateway_client_certificate() {
    let b = bundle(false);
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path()).unwrap();
    let provider = tls_kit(&b, true).await;
    let gw = start_gateway(&tls_yaml(provider.addr().port(), dir.path(), true, None)).await;
    let s = wait_status(&gw, |s| s["state"] == "ready").await;
    assert!(s["last_error"].is_null(), "{s}");
    let client = http_client(&gw.url(), false, Recorder::default()).await;
    let r = call(&client, "kit.echo.v1", json!({"message": "over mTLS"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "over mTLS");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_by_an_mtls_provider() {
    let b = bundle(false);
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path()).unwrap();
    let provider = tls_kit(&b, true).await;
    let gw = start_gateway(&tls_yaml(provider.addr().port(), dir.path(), false, None)).await;
    let s = wait_status(&gw, |s| s["state"] == "down" && s["last_error"].is_string()).await;
    let e = last_error(&s);
    assert!(e.contains("TLS handshake failed"), "{e}");
    assert!(e.contains("missing client cert"), "{e}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_provider_certificate_from_another_ca_is_refused() {
    let (good, other) = (bundle(false), bundle(false));
    let dir = tempfile::tempdir().unwrap();
    other.write(dir.path()).unwrap();
    let provider = tls_kit(&good, false).await;
    let gw = start_gateway(&tls_yaml(provider.addr().port(), dir.path(), false, None)).await;
    let s = wait_status(&gw, |s| s["state"] == "down" && s["last_error"].is_string()).await;
    let e = last_error(&s);
    assert!(
        e.contains("not signed by the CA in tls.ca (wrong CA)"),
        "{e}"
    );

    // Certificate rotation without a restart: the right CA lands in the
    // watched file and the provider comes up.
    std::fs::write(dir.path().join("ca.pem"), &good.ca_cert).unwrap();
    let s = wait_status(&gw, |s| s["state"] == "ready").await;
    assert!(s["last_error"].is_null(), "{s}");
    let client = http_client(&gw.url(), true, Recorder::default()).await;
    let r = call(&client, "kit.echo.v1", json!({"message": "rotated"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "rotated");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_expired_provider_certificate_is_refused() {
    let b = bundle(true);
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path()).unwrap();
    let provider = tls_kit(&b, false).await;
    let gw = start_gateway(&tls_yaml(provider.addr().port(), dir.path(), false, None)).await;
    let s = wait_status(&gw, |s| s["state"] == "down" && s["last_error"].is_string()).await;
    let e = last_error(&s);
    assert!(e.contains("the provider's certificate has expired"), "{e}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_hostname_mismatch_is_refused_and_a_matching_name_accepted() {
    let b = bundle(false);
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path()).unwrap();
    let provider = tls_kit(&b, false).await;
    let port = provider.addr().port();
    let gw = start_gateway(&tls_yaml(port, dir.path(), false, Some("other.example"))).await;
    let s = wait_status(&gw, |s| s["state"] == "down" && s["last_error"].is_string()).await;
    let e = last_error(&s);
    assert!(
        e.contains("does not match the server name 'other.example' (hostname/SAN mismatch)"),
        "{e}"
    );
    gw.shutdown().await;
    // `localhost` is one of the certificate's SANs.
    let gw = start_gateway(&tls_yaml(port, dir.path(), false, Some("localhost"))).await;
    wait_status(&gw, |s| s["state"] == "ready").await;
    gw.shutdown().await;
}

#[test]
fn tls_config_rules_name_the_field() {
    use mcp_gateway::config::Config;
    let e = Config::parse("providers:\n  - name: a\n    endpoint: https://h:1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("providers[0].tls: an https:// endpoint needs tls.ca"),
        "{e}"
    );
    let e =
        Config::parse("providers:\n  - name: a\n    endpoint: http://h:1\n    tls: { ca: x }\n")
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("providers[0].tls: tls is set but the endpoint is http://"),
        "{e}"
    );
    let e = Config::parse(
        "providers:\n  - name: a\n    endpoint: https://h:1\n    tls: { ca: x, cert: y }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("providers[0].tls: set both cert and key"), "{e}");
    assert!(
        Config::parse(
            "providers:\n  - name: a\n    endpoint: https://h:1\n    tls: { ca: x, cert: y, key: z }\n"
        )
        .is_ok()
    );
}

#[test]
fn certs_command_writes_a_usable_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(gateway_bin())
        .args(["certs", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(text.starts_with("-----BEGIN "), "{f}: {text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// `server_tls`: the front door speaks HTTPS with the configured
/// certificate; a client trusting that CA gets answers, plaintext does not.
#[tokio::test]
async fn northbound_tls_serves_https_and_refuses_plaintext() {
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = bundle(false);
    let dir = tempfile::tempdir().unwrap();
    b.write(dir.path()).unwrap();
    let yaml = format!(
        "server_tls: {{ cert: {d}/server.pem, key: {d}/server.key }}\n",
        d = dir.path().display()
    );
    let gw = start_gateway(&yaml).await;
    let connector = connector_trusting(&b.ca_cert);
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the dev CA");
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tls.read_to_string(&mut resp).await.unwrap_or_default();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains(r#"{"status":"ok"}"#), "{resp}");
    // Plaintext HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health", gw.addr))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    gw.shutdown().await;
}

/// A provider built with `TlsConfig::from_files` picks up a rotated
/// certificate without a restart: the gateway, which trusts only the new
/// CA, refuses the old certificate and connects once the files change.
#[tokio::test]
async fn a_provider_reloads_its_rotated_certificate() {
    let (old, new) = (bundle(false), bundle(false));
    let (served, trusted) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    old.write(served.path()).unwrap();
    new.write(trusted.path()).unwrap();
    let tls = TlsConfig::from_files(
        served.path().join("server.pem"),
        served.path().join("server.key"),
        None::<&Path>,
    )
    .unwrap();
    let provider = spawn_on(kit(Arc::default()).tls(tls), "127.0.0.1:0").await;
    let gw = start_gateway(&tls_yaml(
        provider.addr().port(),
        trusted.path(),
        false,
        None,
    ))
    .await;
    let s = wait_status(&gw, |s| s["state"] == "down" && s["last_error"].is_string()).await;
    assert!(last_error(&s).contains("wrong CA"), "{s}");

    new.write(served.path()).unwrap();
    wait_status(&gw, |s| s["state"] == "ready").await;
    let client = http_client(&gw.url(), true, Recorder::default()).await;
    let r = call(&client, "kit.echo.v1", json!({"message": "new cert"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "new cert");
    gw.shutdown().await;
}

/// `server_tls` files are watched too: after rotation, new handshakes get
/// the new certificate (a client trusting only the new CA gets through).
#[tokio::test]
async fn northbound_tls_reloads_its_rotated_certificate() {
    use rustls::pki_types::ServerName;
    let (old, new) = (bundle(false), bundle(false));
    let dir = tempfile::tempdir().unwrap();
    old.write(dir.path()).unwrap();
    let yaml = format!(
        "server_tls: {{ cert: {d}/server.pem, key: {d}/server.key }}\n",
        d = dir.path().display()
    );
    let gw = start_gateway(&yaml).await;
    let connector = connector_trusting(&new.ca_cert);
    let handshake = || async {
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    };
    let e = handshake().await.expect_err("old certificate, new CA");
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");

    new.write(dir.path()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match handshake().await {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("still the old certificate after 10 s: {e}"),
        }
    }
    gw.shutdown().await;
}

/// A TLS client that trusts only `ca_pem`.
fn connector_trusting(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}
