//! The official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! 0.1.16 and 0.2.0-alpha.12, pinned in gateway/tests/conformance) against
//! the gateway with an SDK fixture provider behind it. Every check of every
//! scenario is compared with `expected-failures.txt`: a new failure fails the
//! test, and so does an expected failure that now passes (the list only
//! shrinks). The fixture serves what the suite asks a server for, under the
//! names it uses (`naming.prefix: false`); the tools that ask the client
//! for input are in `conformance_input`. What the gateway cannot do yet
//! (tasks, …) is simply absent, and its scenarios are in the expected
//! failures.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use mcp_provider_sdk::prelude::*;
use serde_json::{Value, json};

use crate::common::*;

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn embedded() -> Content {
    content::embedded_text(
        "test://embedded-resource",
        "text/plain",
        "This is an embedded resource content.",
    )
}

/// A WAV header with no samples.
const WAV: &[u8] = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x44\xac\x00\x00\x88\x58\x01\x00\x02\x00\x10\x00data\x00\x00\x00\x00";

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn fixture() -> ProviderBuilder {
    let tool = |name: &str, description: &str, output: fn() -> Vec<Content>| {
        Tool::raw(name, no_args(), move |_a: Value, _cx| async move {
            Ok(ToolOutput::new(output()))
        })
        .description(description)
    };
    Provider::builder("conformance")
        .tool(tool("test_simple_text", "Returns simple text", || {
            vec![content::text("This is a simple text response for testing.")]
        }))
        .tool(tool("test_image_content", "Returns an image", || {
            vec![content::image(PNG.to_vec(), "image/png")]
        }))
        .tool(tool("test_audio_content", "Returns audio", || {
            vec![content::audio(WAV.to_vec(), "audio/wav")]
        }))
        .tool(tool(
            "test_embedded_resource",
            "Returns an embedded resource",
            || vec![embedded()],
        ))
        .tool(tool(
            "test_multiple_content_types",
            "Returns text, an image and a resource",
            || {
                vec![
                    content::text("Multiple content types test:"),
                    content::image(PNG.to_vec(), "image/png"),
                    embedded(),
                ]
            },
        ))
        .tool(
            Tool::raw(
                "test_error_handling",
                no_args(),
                |_a: Value, _cx| async move {
                    Err::<ToolOutput, _>(ToolError::new(
                        "This tool intentionally returns an error for testing",
                    ))
                },
            )
            .description("Always fails"),
        )
        .tool(
            Tool::raw(
                "test_tool_with_progress",
                no_args(),
                |_a: Value, cx: Context| async move {
                    for p in [0.0, 50.0, 100.0] {
                        cx.progress(p, Some(100.0), format!("{p}%")).await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(ToolOutput::text("Progress complete"))
                },
            )
            .description("Reports progress 0, 50, 100 of 100"),
        )
        .tool(
            Tool::raw(
                "test_tool_with_logging",
                no_args(),
                |_a: Value, cx: Context| async move {
                    // The call's own log messages, to its caller only.
                    for step in [
                        "Tool execution started",
                        "Tool processing data",
                        "Tool execution completed",
                    ] {
                        cx.log(LogLevel::Info, step).await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(ToolOutput::text("Logging complete"))
                },
            )
            .description("Sends three log messages"),
        )
        .tool(
            Tool::raw(
                "test_logging_tool",
                no_args(),
                |_a: Value, cx: Context| async move {
                    // SEP-2575: without `_meta` logLevel none of these may be sent.
                    cx.log(LogLevel::Info, "a log message").await;
                    cx.log(LogLevel::Error, "another one").await;
                    Ok(ToolOutput::text("Logged"))
                },
            )
            .description("Sends two log messages"),
        )
        .tool(
            Tool::raw(
                "json_schema_2020_12_tool",
                json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {
                        "address": {
                            "$anchor": "address",
                            "type": "object",
                            "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                        }
                    },
                    "properties": {
                        "name": {"type": "string"},
                        "address": {"$ref": "#/$defs/address"},
                        "contact": {"type": "string"},
                        "kind": {"type": "string"}
                    },
                    "allOf": [{"anyOf": [{"required": ["name"]}, {"required": ["contact"]}]}],
                    "if": {"properties": {"kind": {"const": "company"}}},
                    "then": {"required": ["address"]},
                    "else": {},
                    "additionalProperties": false
                }),
                |_a: Value, _cx| async move { Ok(ToolOutput::text("ok")) },
            )
            .description("A JSON Schema 2020-12 input schema"),
        )
        // SEP-2243: a parameter the client mirrors in `Mcp-Param-Region`.
        .tool(
            Tool::raw(
                "test_header_param",
                json!({
                    "type": "object",
                    "properties": {
                        "region": {"type": "string", "x-mcp-header": "Region"}
                    },
                    "required": ["region"]
                }),
                |_a: Value, _cx| async move { Ok(ToolOutput::text("ok")) },
            )
            .description("A tool whose region parameter travels in a header"),
        )
        .resource(
            Resource::new("test://static-text", "static-text", |_u, _c| async {
                Ok(ResourceBody::text(
                    "This is the content of the static text resource.",
                ))
            })
            .description("A static text resource")
            .mime_type("text/plain"),
        )
        .resource(
            Resource::new("test://static-binary", "static-binary", |_u, _c| async {
                Ok(ResourceBody::blob(PNG.to_vec()))
            })
            .description("A static binary resource")
            .mime_type("image/png"),
        )
        .resource(
            Resource::new(
                "test://watched-resource",
                "watched-resource",
                |_u, _c| async { Ok(ResourceBody::text("Watched resource content")) },
            )
            .description("A resource to subscribe to")
            .mime_type("text/plain"),
        )
        .resource_template(
            ResourceTemplate::new(
                "test://template/{id}/data",
                "template",
                |_u, cx: Context| async move {
                    let id = cx.template_var("id").unwrap_or_default().to_string();
                    Ok(ResourceBody::text(
                    json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
                        .to_string(),
                ))
                },
            )
            .description("A resource template")
            .mime_type("application/json"),
        )
        .prompt(
            Prompt::new(
                "test_simple_prompt",
                |_a: std::collections::HashMap<String, String>, _cx| async {
                    Ok(PromptReply::user("This is a simple prompt for testing."))
                },
            )
            .description("A simple prompt"),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_arguments",
                |a: std::collections::HashMap<String, String>, _cx| async move {
                    Ok(PromptReply::user(format!(
                        "Prompt with arguments: arg1='{}', arg2='{}'",
                        a.get("arg1").map_or("", String::as_str),
                        a.get("arg2").map_or("", String::as_str)
                    )))
                },
            )
            .description("A prompt with arguments")
            .argument("arg1", "First test argument", true)
            .argument("arg2", "Second test argument", true),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_embedded_resource",
                |a: std::collections::HashMap<String, String>, _cx| async move {
                    let uri = a.get("resourceUri").cloned().unwrap_or_default();
                    Ok(PromptReply::new()
                        .message(
                            Role::User,
                            content::embedded_text(
                                uri,
                                "text/plain",
                                "Embedded resource content for testing.",
                            ),
                        )
                        .message(
                            Role::User,
                            content::text("Please process the embedded resource above."),
                        ))
                },
            )
            .description("A prompt with an embedded resource")
            .argument("resourceUri", "URI of the resource to embed", true),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_image",
                |_a: std::collections::HashMap<String, String>, _cx| async {
                    Ok(PromptReply::new()
                        .message(Role::User, content::image(PNG.to_vec(), "image/png"))
                        .message(Role::User, content::text("Please analyze the image above.")))
                },
            )
            .description("A prompt with an image"),
        )
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// One run of a suite version: (label, package, arguments after the URL).
const RUNS: &[(&str, &str, &[&str])] = &[
    ("0.1.16", "conformance-stable", &["--suite", "all"]),
    (
        "0.2.0-alpha.12@2025-11-25",
        "conformance-next",
        &["--requirements", "2025-11-25"],
    ),
    (
        "0.2.0-alpha.12@2026-07-28",
        "conformance-next",
        &["--requirements", "2026-07-28"],
    ),
];

/// `server-<scenario>-<timestamp>` → scenario.
fn scenario_of(dir: &str) -> Option<&str> {
    let rest = dir.strip_prefix("server-")?;
    // The timestamp is 24 characters, e.g. 2026-12-01T10-10-16-885Z.
    rest.len()
        .checked_sub(25)
        .map(|cut| &rest[..cut])
        .filter(|s| !s.is_empty())
}

/// Every check's worst status and its message, keyed `run scenario check-id`.
fn statuses(run: &str, out: &Path) -> BTreeMap<String, (String, String)> {
    let rank = |s: &str| match s {
        "FAILURE" => 3,
        "WARNING" => 2,
        "SUCCESS" => 1,
        _ => 0,
    };
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(scenario) = scenario_of(&name) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("checks.json")) else {
            continue; // skipped at this revision
        };
        let checks: Vec<Value> = serde_json::from_str(&text).unwrap();
        for c in checks {
            let status = c["status"].as_str().unwrap_or_default().to_string();
            if status == "INFO" {
                continue;
            }
            let key = format!("{run} {scenario} {}", c["id"].as_str().unwrap_or("?"));
            let worse = all
                .get(&key)
                .is_none_or(|(old, _): &(String, String)| rank(&status) > rank(old));
            if worse {
                let message = c["errorMessage"].as_str().unwrap_or_default().to_string();
                all.insert(key, (status, message));
            }
        }
    }
    all
}

fn expected_failures() -> BTreeSet<String> {
    std::fs::read_to_string(suite_dir().join("expected-failures.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn the_official_conformance_suite_finds_no_new_failures() {
    let suite = suite_dir();
    assert!(
        suite.join("node_modules/conformance-stable").is_dir()
            && suite.join("node_modules/conformance-next").is_dir(),
        "the conformance suite is not installed: run `make test-deps` (npm ci in {})",
        suite.display()
    );
    let fixture = crate::conformance_input::with_input_fixtures(fixture());
    let provider = spawn_on(fixture, "127.0.0.1:0").await;
    let gw = start_gateway(&config_yaml(
        &[("conformance", provider.addr())],
        "naming:\n  prefix: false\n",
    ))
    .await;
    // The suite's DNS-rebinding scenario needs a `localhost` URL.
    let url = format!("http://localhost:{}/mcp", gw.addr.port());
    let out = tempfile::tempdir().unwrap();
    let mut checks = BTreeMap::new();
    for (label, package, args) in RUNS {
        let dir = out.path().join(label);
        let run = tokio::process::Command::new("node")
            .arg("--import")
            .arg(suite.join("node20.mjs"))
            .arg(
                suite
                    .join("node_modules")
                    .join(package)
                    .join("dist/index.js"),
            )
            .args(["server", "--url", &url, "-o"])
            .arg(&dir)
            .args(*args)
            .kill_on_drop(true)
            .output();
        let run = tokio::time::timeout(Duration::from_secs(600), run)
            .await
            .unwrap_or_else(|_| panic!("conformance {label} did not finish"))
            .unwrap();
        assert!(
            dir.is_dir(),
            "conformance {label} wrote no results: {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let these = statuses(label, &dir);
        // A run that reached nothing must not pass as "no failures".
        let passed = these.values().filter(|(s, _)| s == "SUCCESS").count();
        assert!(
            passed >= 20,
            "conformance {label}: only {passed} checks passed: {these:#?}"
        );
        checks.extend(these);
    }
    let failing: BTreeSet<String> = checks
        .iter()
        .filter(|(_, (s, _))| s == "FAILURE")
        .map(|(k, _)| k.clone())
        .collect();
    let expected = expected_failures();
    let new: Vec<_> = failing
        .difference(&expected)
        .map(|k| format!("{k}: {}", checks[k].1))
        .collect();
    let fixed: Vec<_> = expected.difference(&failing).collect();
    let all: Vec<_> = failing
        .iter()
        .map(|k| format!("{k}: {}", checks[k].1))
        .collect();
    assert!(
        new.is_empty() && fixed.is_empty(),
        "conformance differs from tests/conformance/expected-failures.txt\n\
         new failures: {new:#?}\nnow passing (remove them): {fixed:#?}\n\
         all failures this run: {all:#?}"
    );
    gw.shutdown().await;
}
