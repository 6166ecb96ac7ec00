//! Tools: a name, schemas, annotations and an async handler.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use mcp_gateway_proto::provider::{self as pb, ToolAnnotations};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::content::{self, Content};
use crate::{Context, SdkError, ToolError};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call whose arguments were accepted, ready to run in its own task.
/// Deserializing up front lets bad arguments fail the RPC immediately with
/// `INVALID_ARGUMENT`, while the user's code only ever runs inside the
/// spawned task (where a panic cannot take the connection down).
pub(crate) type PreparedCall = Box<dyn FnOnce(Context) -> BoxFuture<ToolResult> + Send>;
pub(crate) type ToolResult = Result<ToolOutput, ToolError>;
type ErasedHandler = dyn Fn(Value) -> Result<PreparedCall, ToolError> + Send + Sync;

/// A tool the provider offers. Build one with [`Tool::new`] (typed
/// arguments, schema generated) or [`Tool::raw`] (JSON in, your schema).
#[derive(Clone)]
pub struct Tool {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
    pub(crate) output_schema: Option<Value>,
    pub(crate) annotations: ToolAnnotations,
    pub(crate) handler: Arc<ErasedHandler>,
}

impl Tool {
    /// A tool whose arguments deserialize into `A`. The input schema is
    /// generated from `A` (JSON Schema 2020-12); arguments that do not
    /// deserialize are answered with `INVALID_ARGUMENT` and serde's message.
    pub fn new<A, F, Fut>(name: impl Into<String>, handler: F) -> Tool
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(A, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased = move |args: Value| -> Result<PreparedCall, ToolError> {
            let args: A = serde_json::from_value(args)
                .map_err(|e| ToolError::invalid_argument(format!("invalid arguments: {e}")))?;
            let handler = Arc::clone(&handler);
            Ok(Box::new(move |ctx| Box::pin(handler(args, ctx))))
        };
        Self::with_handler(name.into(), schema_for::<A>(), Arc::new(erased))
    }

    /// A tool that takes its arguments as a JSON object, described by
    /// `input_schema`.
    pub fn raw<F, Fut>(name: impl Into<String>, input_schema: Value, handler: F) -> Tool
    where
        F: Fn(Value, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ToolOutput, ToolError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased = move |args: Value| -> Result<PreparedCall, ToolError> {
            let handler = Arc::clone(&handler);
            Ok(Box::new(move |ctx| Box::pin(handler(args, ctx))))
        };
        Self::with_handler(name.into(), input_schema, Arc::new(erased))
    }

    fn with_handler(name: String, input_schema: Value, handler: Arc<ErasedHandler>) -> Tool {
        Tool {
            name,
            title: String::new(),
            description: String::new(),
            input_schema,
            output_schema: None,
            annotations: ToolAnnotations::default(),
            handler,
        }
    }

    /// The tool's name, e.g. `echo.v1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Human-readable title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.to_owned();
        self
    }

    /// What the tool does; the model reads this to decide when to call it.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// Replaces the input schema (e.g. one loaded with [`schema_from_file`]).
    /// Typed tools still deserialize into their argument type.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    /// Declares the shape of `structured` results; the gateway checks them.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Declares the output schema generated from `T`.
    pub fn output_schema_for<T: JsonSchema>(self) -> Self {
        self.output_schema(schema_for::<T>())
    }

    /// Annotation: the tool does not modify its environment.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.annotations.read_only_hint = Some(yes);
        self
    }

    /// Annotation: the tool may perform destructive updates.
    pub fn destructive(mut self, yes: bool) -> Self {
        self.annotations.destructive_hint = Some(yes);
        self
    }

    /// Annotation: repeating a call with the same arguments has no extra effect.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.annotations.idempotent_hint = Some(yes);
        self
    }

    /// Annotation: the tool talks to an open world of external entities.
    pub fn open_world(mut self, yes: bool) -> Self {
        self.annotations.open_world_hint = Some(yes);
        self
    }

    pub(crate) fn to_proto(&self) -> pb::Tool {
        pb::Tool {
            name: self.name.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            input_schema: json_bytes(&self.input_schema),
            output_schema: self
                .output_schema
                .as_ref()
                .map(json_bytes)
                .unwrap_or_default(),
            annotations: Some(self.annotations),
            meta: Vec::new(),
        }
    }
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("title", &self.title)
            .field("input_schema", &self.input_schema)
            .field("output_schema", &self.output_schema)
            .field("annotations", &self.annotations)
            .finish_non_exhaustive()
    }
}

fn schema_for<T: JsonSchema>() -> Value {
    // draft2020_12 keeps `$schema`, which is what MCP 2025-11-25 expects.
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

pub(crate) fn json_bytes(v: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail (its map keys are strings).
    serde_json::to_vec(v).unwrap_or_default()
}

/// Loads a JSON Schema from a file, e.g. `schemas/echo.input.json`.
pub fn schema_from_file(path: impl AsRef<Path>) -> Result<Value, SdkError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| SdkError::SchemaFile {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SdkError::SchemaJson {
        path: Some(path.to_owned()),
        source,
    })
}

/// Parses a JSON Schema from a string, e.g. one embedded with `include_str!`.
pub fn schema_from_str(text: &str) -> Result<Value, SdkError> {
    serde_json::from_str(text).map_err(|source| SdkError::SchemaJson { path: None, source })
}

/// What a tool returns: content blocks for the model, optional structured
/// JSON for programs, and whether the tool failed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolOutput {
    pub content: Vec<Content>,
    pub structured: Option<Value>,
    pub is_error: bool,
}

impl ToolOutput {
    /// A result made of these content blocks.
    pub fn new(content: Vec<Content>) -> Self {
        Self {
            content,
            ..Default::default()
        }
    }

    /// A single text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(vec![content::text(text)])
    }

    /// Structured content plus one text block holding the same JSON, as MCP
    /// recommends for clients that only read text. If `value` cannot be
    /// serialized the result is an error result saying so.
    pub fn structured<T: Serialize>(value: &T) -> Self {
        match serde_json::to_value(value) {
            Ok(v) => Self::text(v.to_string()).with_structured(v),
            Err(e) => Self::error(format!("cannot serialize structured content: {e}")),
        }
    }

    /// A failed result (`is_error: true`) with one text block; the model sees it.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::text(message)
        }
    }

    /// Sets the structured content (keeps the content blocks as they are).
    pub fn with_structured(mut self, value: Value) -> Self {
        self.structured = Some(value);
        self
    }

    /// Appends a content block.
    pub fn with_content(mut self, content: Content) -> Self {
        self.content.push(content);
        self
    }

    pub(crate) fn into_proto(self) -> pb::ToolResult {
        pb::ToolResult {
            content: self.content,
            structured_content: self.structured.as_ref().map(json_bytes).unwrap_or_default(),
            is_error: self.is_error,
            meta: Vec::new(),
        }
    }
}
