//! README.md's Inspector CLI commands, run as written against the gateway
//! binary and the real hello-rs, each checked for the result its `# →`
//! comment promises. What differs from a reader's shell is said where it
//! is done: the Inspector comes from the pinned install (npx would fetch
//! the same version), and the addresses are this test's.

use std::path::Path;

use crate::{common::*, inspector::inspector_bin};

const NPX: &str = "npx -y @modelcontextprotocol/inspector@";

/// One command: the shell text and what its output must contain.
struct Command {
    shell: String,
    expect: String,
}

/// The `sh` blocks of the README's "Connect MCP Inspector" section, with
/// continued lines joined; `URL=` lines are kept as the shell's setup.
fn commands(readme: &str) -> (Vec<String>, Vec<Command>) {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Connect MCP Inspector"))
        .expect("README has a \"Connect MCP Inspector\" section");
    let mut setup = Vec::new();
    let mut out = Vec::new();
    for block in section.split("```sh\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let joined = body.replace("\\\n", " ");
        for line in joined.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.starts_with("URL=") {
                setup.push(line.to_string());
                continue;
            }
            let (shell, expect) = match line.split_once("# →") {
                Some((c, e)) => (c.trim().to_string(), e.trim().to_string()),
                None => (line.to_string(), String::new()),
            };
            out.push(Command { shell, expect });
        }
    }
    (setup, out)
}

#[tokio::test]
async fn readme_inspector_commands_give_what_the_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (setup, all) = commands(&readme);
    let pinned: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inspector/package.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let npx = format!(
        "{NPX}{}",
        pinned["dependencies"]["@modelcontextprotocol/inspector"]
            .as_str()
            .unwrap()
    );
    let cli: Vec<&Command> = all.iter().filter(|c| c.shell.contains(" --cli")).collect();
    assert!(
        cli.len() >= 5,
        "the README lost its CLI commands: {}",
        cli.len()
    );
    for c in &cli {
        assert!(
            c.shell.starts_with(&format!("{npx} ")),
            "a README command does not pin the tested Inspector ({npx}): {}",
            c.shell
        );
        assert!(!c.expect.is_empty(), "no `# →` result for: {}", c.shell);
    }
    // The plain web UI command pins it too.
    assert!(
        all.iter().any(|c| c.shell == npx),
        "no `{npx}` web UI command"
    );

    let (hello, gateway, _config, port) = gateway_in_front_of_hello().await;
    // The stdio example's config, pointed at this test's hello-rs.
    let example = std::fs::read_to_string(root.join("docs/examples/stdio.yaml")).unwrap();
    assert!(example.contains("http://127.0.0.1:50052"), "{example}");
    let stdio = temp_config(&example.replace("127.0.0.1:50052", &hello.addr.to_string()));
    let home = tempfile::tempdir().unwrap();

    let mut failures = Vec::new();
    for c in cli {
        let shell = c
            .shell
            .replace(&npx, &inspector_bin().display().to_string())
            .replace(
                "./target/debug/mcp-gateway",
                &gateway_bin().display().to_string(),
            )
            .replace(
                "docs/examples/stdio.yaml",
                &stdio.path().display().to_string(),
            );
        let script = format!(
            "{}\n{shell}",
            setup
                .iter()
                .map(|l| l.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let out = tokio::process::Command::new("bash")
            .args(["-c", &script])
            .current_dir(&root)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains(&c.expect) {
            failures.push(format!(
                "{}\n  wanted {:?}; exit {:?}\n  stdout: {stdout}\n  stderr: {}",
                c.shell,
                c.expect,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let logs = stop_and_logs(gateway).await;
    assert!(
        failures.is_empty(),
        "{}\ngateway:\n{logs}",
        failures.join("\n")
    );
}
