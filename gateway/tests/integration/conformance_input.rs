//! The conformance fixture's tools and prompt that ask the client for input:
//! the 2025-11-25 elicitation and sampling scenarios and the 2026-07-28
//! `input-required-result-*` ones, each as the suite's source describes it.
//! Written once with the SDK; the gateway makes them work on both revisions.

use mcp_provider_sdk::prelude::*;
use serde_json::{Value, json};

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn name_schema() -> Value {
    object(json!({"name": {"type": "string"}}), &["name"])
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn text(t: impl Into<String>) -> Result<ToolOutput, ToolError> {
    Ok(ToolOutput::text(t))
}

/// The content of an elicitation answer.
fn answered(v: &Value, field: &str) -> String {
    v["content"][field].as_str().unwrap_or_default().to_string()
}

pub(super) fn with_input_fixtures(b: ProviderBuilder) -> ProviderBuilder {
    b.tool(
        Tool::raw(
            "test_elicitation",
            object(json!({"message": {"type": "string"}}), &["message"]),
            |a: Value, cx: Context| async move {
                let schema = object(
                    json!({
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"},
                    }),
                    &["username", "email"],
                );
                let message = a["message"].as_str().unwrap_or_default().to_string();
                let e = cx.elicit(message, schema).await?;
                text(format!(
                    "User response: action={}, content={}",
                    e.action,
                    e.content.unwrap_or(Value::Null)
                ))
            },
        )
        .description("Asks the user for their name and email"),
    )
    .tool(
        Tool::raw(
            "test_elicitation_sep1034_defaults",
            no_args(),
            |_a: Value, cx: Context| async move {
                let schema = object(
                    json!({
                        "name": {"type": "string", "default": "John Doe"},
                        "age": {"type": "integer", "default": 30},
                        "score": {"type": "number", "default": 95.5},
                        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "default": true},
                    }),
                    &[],
                );
                let e = cx.elicit("Please review your details", schema).await?;
                text(format!(
                    "Elicitation completed: action={}, content={}",
                    e.action,
                    e.content.unwrap_or(Value::Null)
                ))
            },
        )
        .description("Elicitation with defaults (SEP-1034)"),
    )
    .tool(
        Tool::raw(
            "test_elicitation_sep1330_enums",
            no_args(),
            |_a: Value, cx: Context| async move {
                let titled = |items: &[(&str, &str)]| {
                    items
                        .iter()
                        .map(|(c, t)| json!({"const": c, "title": t}))
                        .collect::<Vec<_>>()
                };
                let schema = object(
                    json!({
                        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "oneOf": titled(&[("value1", "First Option"), ("value2", "Second Option"), ("value3", "Third Option")])},
                        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "items": {"anyOf": titled(&[("value1", "First Choice"), ("value2", "Second Choice"), ("value3", "Third Choice")])}},
                    }),
                    &[],
                );
                let e = cx.elicit("Pick your options", schema).await?;
                text(format!(
                    "Elicitation completed: action={}, content={}",
                    e.action,
                    e.content.unwrap_or(Value::Null)
                ))
            },
        )
        .description("Elicitation with every enum form (SEP-1330)"),
    )
    .tool(
        Tool::raw(
            "test_sampling",
            object(json!({"prompt": {"type": "string"}}), &["prompt"]),
            |a: Value, cx: Context| async move {
                let prompt = a["prompt"].as_str().unwrap_or_default().to_string();
                let s = cx.sample(prompt, 100).await?;
                text(format!("LLM response: {}", s.text.unwrap_or_default()))
            },
        )
        .description("Asks the client's model"),
    )
    .tool(
        Tool::raw("test_streaming_elicitation", no_args(), |_a: Value, cx: Context| async move {
            // 2026-07-28: an InputRequiredResult, never a request on the stream.
            let e = cx.elicit("Continue?", name_schema()).await?;
            text(format!("action={}", e.action))
        })
        .description("Elicits in the middle of a call"),
    )
    .tool(
        Tool::raw("test_missing_capability", no_args(), |_a: Value, cx: Context| async move {
            let s = cx.sample("Needs sampling", 10).await?;
            text(s.text.unwrap_or_default())
        })
        .description("Needs the client's sampling capability"),
    )
    .tool(Tool::raw(
        "test_input_required_result_elicitation",
        no_args(),
        |_a: Value, cx: Context| async move {
            let v = cx
                .ask("user_name", Ask::elicit("What is your name?", name_schema()))
                .await?;
            text(format!("Hello, {}!", answered(&v, "name")))
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_sampling",
        no_args(),
        |_a: Value, cx: Context| async move {
            let v = cx
                .ask(
                    "capital_question",
                    Ask::sample("What is the capital of France?", 100),
                )
                .await?;
            text(v["content"]["text"].as_str().unwrap_or_default())
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_list_roots",
        no_args(),
        |_a: Value, cx: Context| async move {
            let v = cx.ask("client_roots", Ask::roots()).await?;
            let uris: Vec<_> = v["roots"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["uri"].as_str())
                .collect();
            text(format!("Roots: {}", uris.join(", ")))
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_request_state",
        no_args(),
        |_a: Value, cx: Context| async move {
            // The explicit form: this round's own state, checked on return.
            if cx.request_state() == b"awaiting-confirm" && cx.input_response("confirm").is_some() {
                return text("state-ok: confirmed");
            }
            let ask = Ask::elicit(
                "Please confirm",
                object(json!({"ok": {"type": "boolean"}}), &["ok"]),
            );
            Err(InputRequired::new()
                .ask("confirm", ask)
                .state("awaiting-confirm")
                .into())
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_multiple_inputs",
        no_args(),
        |_a: Value, cx: Context| async move {
            let keys = ["user_name", "greeting", "client_roots"];
            if keys.iter().all(|k| cx.input_response(k).is_some()) {
                let name = answered(cx.input_response("user_name").unwrap(), "name");
                return text(format!("All inputs received, {name}"));
            }
            Err(InputRequired::new()
                .ask("user_name", Ask::elicit("What is your name?", name_schema()))
                .ask("greeting", Ask::sample("Generate a greeting", 50))
                .ask("client_roots", Ask::roots())
                .state("multi")
                .into())
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_multi_round",
        no_args(),
        |_a: Value, cx: Context| async move {
            let name = cx
                .ask("step1", Ask::elicit("Step 1: What is your name?", name_schema()))
                .await?;
            let color = cx
                .ask(
                    "step2",
                    Ask::elicit(
                        "Step 2: What is your favorite color?",
                        object(json!({"color": {"type": "string"}}), &["color"]),
                    ),
                )
                .await?;
            text(format!(
                "{} likes {}",
                answered(&name, "name"),
                answered(&color, "color")
            ))
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_tampered_state",
        no_args(),
        |_a: Value, cx: Context| async move {
            let v = cx
                .ask(
                    "confirm",
                    Ask::elicit("Confirm", object(json!({"ok": {"type": "boolean"}}), &["ok"])),
                )
                .await?;
            text(format!("confirmed: {}", v["content"]["ok"]))
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .tool(Tool::raw(
        "test_input_required_result_capabilities",
        no_args(),
        |_a: Value, cx: Context| async move {
            if !cx.input_responses().is_empty() {
                return text("Thanks");
            }
            // Only what the client declared.
            let mut asks = InputRequired::new();
            if cx.can_sample() {
                asks = asks.ask("sample", Ask::sample("Say hi", 10));
            }
            if cx.can_elicit() {
                asks = asks.ask("elicit", Ask::elicit("Name?", name_schema()));
            }
            Err(asks.state("caps").into())
        },
    )
    .description("A multi round-trip request fixture (SEP-2322)"))
    .prompt(Prompt::new(
        "test_input_required_result_prompt",
        |_a: std::collections::HashMap<String, String>, cx: Context| async move {
            let v = cx
                .ask(
                    "user_context",
                    Ask::elicit(
                        "What context should the prompt use?",
                        object(json!({"context": {"type": "string"}}), &["context"]),
                    ),
                )
                .await?;
            Ok(PromptReply::user(format!(
                "Use this context: {}",
                answered(&v, "context")
            )))
        },
    )
    .description("A prompt that asks for context first (SEP-2322)"))
}
