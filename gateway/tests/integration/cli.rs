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
fn missing_explicit_config_is_an_error_said_once() {
    for args in [
        vec!["check", "--config", "/nonexistent/providers.yaml"],
        vec!["--config", "/nonexistent/providers.yaml"],
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("/nonexistent/providers.yaml: cannot read the config file"),
            "{err}"
        );
        assert_eq!(err.matches("No such file").count(), 1, "{err}");
    }
}

#[test]
fn check_without_a_config_file_fails_and_says_what_would_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(gateway_bin())
        .arg("check")
        .current_dir(dir.path())
        .env_remove("MCP_GATEWAY_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("providers.yaml: cannot read the config file"),
        "{err}"
    );
    assert!(err.contains("embedded default"), "{err}");
}

/// What start refuses, check refuses too, and all of it in one go: the
/// files the config names, and several type errors at once.
#[test]
fn check_fails_on_what_start_fails_on_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let files = format!(
        "server_tls:\n  cert: {m}/server.pem\n  key: {m}/server.key\n\
         audit:\n  path: {m}/audit/audit.jsonl\n\
         providers:\n  - name: a\n    endpoint: https://127.0.0.1:1\n    tls:\n      ca: {m}/ca.pem\n",
        m = missing.display()
    );
    let types = "shutdown_grace: soon\nlimits:\n  max_sessions: many\n  list_page_size: -1\n\
                 providers:\n  - name: a\n    endpoint: http://h:1\n    pool_size: big\n";
    for (yaml, want) in [
        (
            files.as_str(),
            &[
                ("server_tls.cert", "server.pem"),
                ("audit.path", "does not exist"),
                ("providers[0].tls.ca", "ca.pem"),
            ][..],
        ),
        (
            types,
            &[
                ("shutdown_grace", "soon"),
                ("limits.max_sessions", "many"),
                ("limits.list_page_size", "-1"),
                ("providers[0].pool_size", "big"),
            ][..],
        ),
    ] {
        let f = temp_config(yaml);
        let path = f.path().to_str().unwrap();
        let (ok, _, err) = run(&["check", "--config", path]);
        assert!(!ok, "{yaml} passed the check");
        assert!(
            err.contains(&format!("{} problems:", want.len())),
            "{yaml}: {err}"
        );
        for (field, words) in want {
            let line = err
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{field}: ")))
                .unwrap_or_else(|| panic!("{yaml}: no line for {field}: {err}"));
            assert!(line.contains(words), "{field}: {line}");
        }
        // Start refuses the same config, naming the same fields.
        let (ok, _, err) = run(&["--config", path]);
        assert!(!ok, "{yaml} started");
        for (field, _) in want {
            assert!(err.contains(field), "start does not name {field}: {err}");
        }
    }
}

#[test]
fn public_listen_override_is_refused_without_auth() {
    let f = temp_config("providers: []\n");
    let path = f.path().to_str().unwrap();
    // Start refuses it, and so does check.
    for args in [
        vec!["--config", path, "--listen", "0.0.0.0:0"],
        vec!["check", "--config", path, "--listen", "0.0.0.0:0"],
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert!(err.contains("listen: 0.0.0.0:0 (from --listen)"), "{err}");
        assert!(err.contains("loopback"), "{err}");
    }
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
