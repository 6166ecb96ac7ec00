//! End to end with a third-party client: the official MCP Inspector CLI
//! (pinned in gateway/tests/inspector/package.json) against the real gateway
//! and the real hello-rs provider binary, over Streamable HTTP and over stdio.
//!
//! Needs `npm ci --prefix gateway/tests/inspector` and `cargo build -p hello-rs`
//! (`make test` does both). Missing either is a failure, never a skip.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::{Value, json};

use crate::common::*;

/// The Inspector CLI's exit code for a tool result with `isError: true`.
const EXIT_TOOL_ERROR: i32 = 5;
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

pub fn inspector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inspector")
}

/// The installed CLI, after checking it is the version package.json pins.
pub fn inspector_bin() -> PathBuf {
    let dir = inspector_dir();
    let bin = dir.join("node_modules/.bin/mcp-inspector");
    let fix = "run `npm ci --prefix gateway/tests/inspector` (make test does this)";
    assert!(
        bin.exists(),
        "the MCP Inspector CLI is not installed ({} is missing): {fix}",
        bin.display()
    );
    let read = |p: PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let pinned =
        read(dir.join("package.json"))["dependencies"]["@modelcontextprotocol/inspector"].clone();
    let installed =
        read(dir.join("node_modules/@modelcontextprotocol/inspector/package.json"))["version"]
            .clone();
    assert_eq!(
        installed, pinned,
        "installed MCP Inspector differs from the pinned version: {fix}"
    );
    bin
}

/// How the Inspector reaches the gateway.
enum Target<'a> {
    /// Streamable HTTP at this URL.
    Http(String),
    /// The gateway binary with `--stdio --config <path>`.
    Stdio(&'a Path),
}

/// The protocol revision the Inspector negotiates (its `--protocol-era`):
/// `legacy` is the 2025-11-25 initialize handshake, `modern` is 2026-07-28.
#[derive(Clone, Copy, Debug)]
enum Era {
    Legacy,
    Modern,
}

struct Inspector<'a> {
    target: Target<'a>,
    era: Era,
    home: tempfile::TempDir,
}

/// One CLI run: the exit code, the `result` from stdout, and stderr.
struct Run {
    code: Option<i32>,
    result: Value,
    stderr: String,
}

impl<'a> Inspector<'a> {
    fn new(target: Target<'a>, era: Era) -> Self {
        Self {
            target,
            era,
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs `mcp-inspector --cli` with `args` (the method and its flags).
    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(inspector_bin());
        cmd.arg("--cli");
        if let Target::Http(url) = &self.target {
            cmd.arg(url).args(["--transport", "http"]);
        }
        let era = match self.era {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        };
        cmd.args(["--protocol-era", era, "--format", "json"]);
        cmd.args(args);
        if let Target::Stdio(config) = &self.target {
            // `--` ends the Inspector's flags: the rest is the server command.
            cmd.args(["-e", "RUST_LOG=warn", "--"])
                .arg(gateway_bin())
                .arg("--stdio")
                .arg("--config")
                .arg(config);
        }
        // The CLI keeps state under $HOME/.mcp-inspector: keep it out of the real home.
        cmd.current_dir(inspector_dir())
            .env("HOME", self.home.path())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let shown = format!("{cmd:?}");
        let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!("the Inspector CLI timed out after {CLI_TIMEOUT:?}: {shown}")
            })
            .unwrap_or_else(|e| {
                panic!("cannot run the Inspector CLI (is node on PATH?): {e}: {shown}")
            });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let parsed: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}): {shown}\nstdout: {stdout}\nstderr: {stderr}"
            )
        });
        let result = parsed.get("result").cloned().unwrap_or_else(|| {
            panic!("no `result` in the CLI output: {shown}\nstdout: {stdout}\nstderr: {stderr}")
        });
        Run {
            code: out.status.code(),
            result,
            stderr,
        }
    }

    /// Runs and requires a zero exit code.
    async fn ok(&self, args: &[&str]) -> Value {
        let run = self.run(args).await;
        assert_eq!(
            run.code,
            Some(0),
            "{:?} {args:?} failed: {}\nresult: {}",
            self.era,
            run.stderr,
            run.result
        );
        run.result
    }

    async fn tool_names(&self) -> Vec<String> {
        let r = self.ok(&["--method", "tools/list"]).await;
        r["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools array: {r}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    async fn sum_of_1_2_3(&self) {
        let r = self
            .ok(&[
                "--method",
                "tools/call",
                "--tool-name",
                "hello-rs.sum.v1",
                "--tool-arg",
                "numbers=[1,2,3]",
            ])
            .await;
        assert_eq!(r["isError"], json!(false), "{r}");
        assert_eq!(r["content"], json!([{"type": "text", "text": "6"}]), "{r}");
        assert_eq!(r["structuredContent"], json!({"sum": 6}), "{r}");
    }

    async fn plan_for_alice(&self, prompt: &str) {
        let r = self
            .ok(&[
                "--method",
                "prompts/get",
                "--prompt-name",
                prompt,
                "--prompt-args",
                "name=Alice",
            ])
            .await;
        let messages = r["messages"].as_array().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(messages.len(), 1, "{r}");
        assert_eq!(messages[0]["role"], "user", "{r}");
        assert_eq!(messages[0]["content"]["type"], "text", "{r}");
        let text = messages[0]["content"]["text"].as_str().unwrap();
        assert!(text.contains("Alice"), "{prompt}: {text}");
    }

    /// Everything hello-rs offers, through the gateway.
    async fn full_surface(&self) {
        let names = self.tool_names().await;
        for want in ["hello-rs.echo.v1", "hello-rs.sum.v1"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }

        self.sum_of_1_2_3().await;

        let r = self
            .ok(&[
                "--method",
                "tools/call",
                "--tool-name",
                "hello-rs.echo.v1",
                "--tool-arg",
                "message=hi",
            ])
            .await;
        assert_eq!(r["isError"], json!(false), "{r}");
        assert_eq!(r["content"], json!([{"type": "text", "text": "hi"}]), "{r}");
        assert_eq!(r["structuredContent"], json!({"message": "hi"}), "{r}");

        let r = self
            .ok(&["--method", "resources/read", "--uri", "hello://greeting"])
            .await;
        let contents = r["contents"].as_array().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(contents.len(), 1, "{r}");
        assert_eq!(contents[0]["uri"], "hello://greeting", "{r}");
        assert_eq!(contents[0]["text"], "Hello, MCP", "{r}");

        // The listed name, and the unprefixed one the gateway resolves to it.
        self.plan_for_alice("hello-rs.hello-plan").await;
        self.plan_for_alice("hello-plan").await;

        // Bad input is a tool result with isError, naming the field.
        let run = self
            .run(&[
                "--method",
                "tools/call",
                "--tool-name",
                "hello-rs.sum.v1",
                "--tool-arg",
                r#"numbers=["x"]"#,
            ])
            .await;
        let r = &run.result;
        assert_eq!(run.code, Some(EXIT_TOOL_ERROR), "{}\n{r}", run.stderr);
        assert!(run.stderr.contains("tool_is_error"), "{}", run.stderr);
        assert_eq!(r["isError"], json!(true), "{r}");
        let text = r["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains("/numbers/0"), "{r}");
    }
}

#[tokio::test]
async fn inspector_cli_over_streamable_http() {
    let hello = HelloRs::start().await;
    let gw = start_gateway(&config_yaml(&[("hello-rs", hello.addr)], "")).await;
    Inspector::new(Target::Http(gw.url()), Era::Legacy)
        .full_surface()
        .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn inspector_cli_over_stdio() {
    let hello = HelloRs::start().await;
    let config = temp_config(&config_yaml(&[("hello-rs", hello.addr)], ""));
    Inspector::new(Target::Stdio(config.path()), Era::Legacy)
        .full_surface()
        .await;
}

/// The Inspector's 2026-07-28 mode (server/discover, no initialize) on both
/// transports; a smaller tour, the full one runs in the 2025-11-25 tests.
#[tokio::test]
async fn inspector_cli_in_the_2026_07_28_era() {
    let hello = HelloRs::start().await;
    let yaml = config_yaml(&[("hello-rs", hello.addr)], "");
    let gw = start_gateway(&yaml).await;
    let config = temp_config(&yaml);
    for target in [Target::Http(gw.url()), Target::Stdio(config.path())] {
        let cli = Inspector::new(target, Era::Modern);
        let names = cli.tool_names().await;
        assert!(names.iter().any(|n| n == "hello-rs.sum.v1"), "{names:?}");
        cli.sum_of_1_2_3().await;
        cli.plan_for_alice("hello-plan").await;
    }
    gw.shutdown().await;
}
