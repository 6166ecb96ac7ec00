//! The binary: `check`, config errors, and the loopback default.

use std::process::Command;

use crate::common::*;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(gateway_bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../providers.yaml");
    let (ok, out, err) = run(&["check", "--config", shipped]);
    assert!(ok, "{err}");
    assert!(out.contains("OK (1 provider: hello-rs)"), "{out}");
}

#[test]
fn invalid_configs_name_the_field_and_do_not_start() {
    let cases = [
        (
            "providers:\n  - name: a\n    endpoint: http://127.0.0.1:1\n    pool_sise: 3\n",
            "providers[0]",
            "pool_sise",
        ),
        (
            "providers:\n  - name: Bad_Name\n    endpoint: http://127.0.0.1:1\n",
            "providers[0].name",
            "lowercase",
        ),
        (
            "providers:\n  - name: a\n    endpoint: 127.0.0.1:1\n",
            "providers[0].endpoint",
            "http://",
        ),
        (
            "providers:\n  - name: a\n    endpoint: http://h:1\n  - name: a\n    endpoint: http://h:2\n",
            "providers[1].name",
            "duplicate",
        ),
        (
            "providers:\n  - name: a\n    endpoint: http://h:1\n    timeouts:\n      invoke: soon\n",
            "providers[0].timeouts.invoke",
            "",
        ),
        (
            "listen: 0.0.0.0:8080\nproviders: []\n",
            "listen",
            "loopback",
        ),
        ("naming:\n  separator: \"\"\n", "naming.separator", ""),
    ];
    for (yaml, field, words) in cases {
        let f = temp_config(yaml);
        let path = f.path().to_str().unwrap();
        for args in [vec!["check", "--config", path], vec!["--config", path]] {
            let (ok, _, err) = run(&args);
            assert!(!ok, "{yaml} was accepted");
            assert!(
                err.contains(field),
                "{yaml}: error does not name {field}: {err}"
            );
            assert!(err.contains(words), "{yaml}: error lacks {words:?}: {err}");
        }
    }
}

#[test]
fn missing_explicit_config_is_an_error() {
    let (ok, _, err) = run(&["check", "--config", "/nonexistent/providers.yaml"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/providers.yaml"), "{err}");
}

#[test]
fn public_listen_override_is_refused_without_auth() {
    let f = temp_config("providers: []\n");
    let (ok, _, err) = run(&[
        "--config",
        f.path().to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!ok);
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn check_resolves_secret_references_and_names_them() {
    let f = crate::common::temp_config(
        "auth:\n  mode: api_key\n  api_keys:\n    - { principal: a, key: \"${MCPGW_CHECK_UNSET_VAR}\" }\n",
    );
    let path = f.path().to_str().unwrap();
    let (ok, _, err) = run(&["check", "--config", path]);
    assert!(!ok);
    assert!(
        err.contains("auth.api_keys[0].key: environment variable MCPGW_CHECK_UNSET_VAR is not set"),
        "{err}"
    );
}
