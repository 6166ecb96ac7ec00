//! `mcp-bench link-order`: the gateway's functions that run at start, under
//! echo calls on both revisions and at shutdown, read from a callgrind run
//! (mangled names), written in that order as the list `gateway/build.rs`
//! hands lld (`gateway/link-order.txt`). Code that runs together then sits
//! together, and an idle gateway keeps fewer code pages resident.

use std::{collections::BTreeSet, path::Path, time::Duration};

use anyhow::Context as _;

use crate::{client::Mode, clients, echo, load, procs::Bins};

pub async fn write(bins: &Bins, out: &Path) -> anyhow::Result<()> {
    let hello = bins.hello().await?;
    let cg = bins.work.join("link-order.out");
    let gw = bins
        .gateway_callgrind_with(
            "gw-link-order",
            &[("hello-rs", hello.addr)],
            &cg,
            &["--demangle=no"],
        )
        .await?;
    let pid = gw.pid().to_string();
    let run = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .with_context(|| format!("{program} {args:?}"))
    };
    // Part 1: the start and a second of idling; part 2: calls; the rest: shutdown.
    tokio::time::sleep(Duration::from_secs(1)).await;
    run("callgrind_control", &["-d", &pid])?;
    for mode in [Mode::Stateful, Mode::Stateless] {
        let cs = clients(mode, 4, gw.addr, hello.addr).await?;
        let stats = load::closed_loop(cs, echo(), Duration::ZERO, Duration::from_secs(2)).await;
        anyhow::ensure!(
            stats.requests > 0 && stats.errors == 0,
            "calls under callgrind failed"
        );
    }
    run("callgrind_control", &["-d", &pid])?;
    run("kill", &["-TERM", &pid])?;
    gw.wait().await;
    hello.stop().await;

    let parts = [
        format!("{}.1", cg.display()),
        format!("{}.2", cg.display()),
        cg.display().to_string(),
    ];
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for part in &parts {
        let text = std::fs::read_to_string(part).with_context(|| format!("reading {part}"))?;
        // Each part's names sorted, so the list changes only where the code does.
        let names: BTreeSet<String> = gateway_functions(&text).into_iter().collect();
        for n in names {
            if seen.insert(n.clone()) {
                order.push(n);
            }
        }
    }
    anyhow::ensure!(order.len() > 100, "only {} functions found", order.len());
    std::fs::write(out, order.join("\n") + "\n")?;
    eprintln!(
        "mcp-bench: {} functions written to {}",
        order.len(),
        out.display()
    );
    Ok(())
}

/// Names of the functions with cost in the `mcp-gateway` object of one
/// callgrind dump (compressed `ob=`/`fn=` names; `'N` marks recursion).
fn gateway_functions(dump: &str) -> Vec<String> {
    let mut objects = std::collections::HashMap::new();
    let mut functions = std::collections::HashMap::new();
    let mut in_gateway = false;
    let mut out = Vec::new();
    for line in dump.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let Some((id, name)) = rest.split_once(')') else {
            continue;
        };
        let name = name.trim_start();
        match key {
            "ob" | "cob" => {
                if !name.is_empty() {
                    objects.insert(id.to_string(), name.to_string());
                }
                if key == "ob" {
                    in_gateway = objects.get(id).is_some_and(|o| o.ends_with("/mcp-gateway"));
                }
            }
            "fn" | "cfn" => {
                if !name.is_empty() {
                    let bare = name.split_once('\'').map_or(name, |(n, _)| n);
                    functions.insert(id.to_string(), bare.to_string());
                }
                if key == "fn" && in_gateway {
                    match functions.get(id) {
                        Some(n) if !n.starts_with("0x") && !n.starts_with('(') => {
                            out.push(n.clone())
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::gateway_functions;

    #[test]
    fn reads_names_of_the_gateway_object_only() {
        let dump = "ob=(1) /usr/lib/libc.so.6\nfn=(1) malloc\n0 5\n\
                    ob=(2) /x/target/release/mcp-gateway\nfn=(2) _ZN4main17h1E\n0 3\n\
                    cfn=(3) _ZN3foo17h2E'2\ncalls=1 0\n0 1\nfn=(3)\n0 2\nfn=(4) 0x0000000000311ef0\n0 1\n\
                    ob=(1)\nfn=(1)\n0 1\n";
        assert_eq!(gateway_functions(dump), ["_ZN4main17h1E", "_ZN3foo17h2E"]);
    }
}
