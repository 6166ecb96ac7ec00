//! Micro-benchmarks of the gateway's per-request building blocks (criterion:
//! warm-up, outlier detection and confidence intervals done right).
//! `cargo bench -p bench` or `make bench-micro`.

use std::{collections::HashSet, hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_gateway::{
    config::Config,
    internals::{Catalog, ProviderItems, Schema, Upstream, UriMap, convert},
};
use mcp_gateway_proto::provider as pb;
use rmcp::model::{
    CallToolResponse, CallToolResult, ClientJsonRpcMessage, ContentBlock, ListToolsResult,
    NumberOrString, ServerJsonRpcMessage, ServerResult,
};
use serde_json::{Value, json};

fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "message": { "type": "string", "description": "What to echo back." } },
        "required": ["message"],
        "additionalProperties": false
    })
}

/// A catalog of one provider with `n` tools named `synth.tool-NNNNN.v1`.
fn catalog(n: usize) -> Catalog {
    let config = Config::parse("providers:\n  - name: synth\n    endpoint: http://127.0.0.1:9\n")
        .expect("valid config");
    let up = Upstream::new(
        config.providers[0].clone(),
        1 << 20,
        std::path::Path::new("."),
    )
    .expect("endpoint");
    let schema = serde_json::to_vec(&input_schema()).unwrap();
    let tools = (0..n)
        .map(|i| pb::Tool {
            name: format!("tool-{i:05}.v1"),
            description: format!("Synthetic tool number {i}."),
            input_schema: schema.clone(),
            ..Default::default()
        })
        .collect();
    let (items, warnings) = ProviderItems::compile(pb::ListCapabilitiesResponse {
        tools,
        ..Default::default()
    });
    assert!(warnings.is_empty(), "{warnings:?}");
    Catalog::build(&[(up, Arc::new(items))], &[], &config.naming)
}

fn lookup(c: &mut Criterion) {
    // Upstream channels are lazy but need a runtime to exist.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    for n in [10, 10_000] {
        let cat = catalog(n);
        c.bench_function(&format!("catalog lookup, exposed name, {n} tools"), |b| {
            b.iter(|| cat.tool(black_box("synth.tool-00005.v1")).is_ok())
        });
        c.bench_function(&format!("catalog lookup, short name, {n} tools"), |b| {
            b.iter(|| cat.tool(black_box("tool-00005.v1")).is_ok())
        });
    }
    let cat = catalog(10_000);
    c.bench_function("tools/list result, 10,000 tools: build + encode", |b| {
        b.iter(|| {
            let r = ListToolsResult::with_all_items(Vec::clone(&cat.tools_list));
            let msg = ServerJsonRpcMessage::response(
                ServerResult::ListToolsResult(r),
                NumberOrString::Number(1),
            );
            serde_json::to_vec(&msg).unwrap().len()
        })
    });
}

fn validation(c: &mut Criterion) {
    let schema = Schema::compile(&input_schema()).unwrap();
    let ok = json!({ "message": "hello" });
    let bad = json!({ "message": 7 });
    c.bench_function("schema check, small valid payload", |b| {
        b.iter(|| schema.check(black_box(&ok)).is_ok())
    });
    c.bench_function("schema check, small invalid payload", |b| {
        b.iter(|| schema.check(black_box(&bad)).is_err())
    });
}

fn jsonrpc(c: &mut Criterion) {
    let session = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"hello-rs.echo.v1","arguments":{"message":"hello"}}}"#;
    let stateless = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"hello-rs.echo.v1","arguments":{"message":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcp-bench","version":"0.1.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    c.bench_function("JSON-RPC decode tools/call (2025-11-25)", |b| {
        b.iter(|| serde_json::from_slice::<ClientJsonRpcMessage>(black_box(session)).unwrap())
    });
    c.bench_function("JSON-RPC decode tools/call (2026-07-28 _meta)", |b| {
        b.iter(|| serde_json::from_slice::<ClientJsonRpcMessage>(black_box(stateless)).unwrap())
    });
    let mut result = CallToolResult::success(vec![ContentBlock::text("hello")]);
    result.structured_content = Some(json!({ "message": "hello" }));
    c.bench_function("JSON-RPC encode echo result", |b| {
        b.iter(|| {
            let msg = ServerJsonRpcMessage::response(
                ServerResult::from(CallToolResponse::from(black_box(result.clone()))),
                NumberOrString::Number(7),
            );
            serde_json::to_vec(&msg).unwrap()
        })
    });
}

fn results(c: &mut Criterion) {
    let uris = UriMap::new("hello-rs", HashSet::new());
    let text = pb::Content {
        kind: Some(pb::content::Kind::Text(pb::TextContent {
            text: "hello".into(),
        })),
        ..Default::default()
    };
    let structured = br#"{"message":"hello"}"#.to_vec();
    c.bench_function("proto → MCP echo result (content + structured)", |b| {
        b.iter(|| {
            let block = convert::content(black_box(text.clone()), &uris).unwrap();
            let sc = convert::json_opt(black_box(&structured)).unwrap();
            let mut r = CallToolResult::success(vec![block]);
            r.structured_content = sc;
            r
        })
    });
    let args = json!({ "message": "hello" });
    let obj = args.as_object().unwrap().clone();
    c.bench_function("MCP arguments → proto bytes", |b| {
        b.iter(|| serde_json::to_vec(black_box(&obj)).unwrap())
    });
}

criterion_group!(benches, lookup, validation, jsonrpc, results);
criterion_main!(benches);
