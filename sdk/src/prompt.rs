//! Prompts: named message templates with string arguments.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use mcp_gateway_proto::provider::{
    self as pb, GetPromptResponse, PromptArgument, PromptMessage, Role,
};

use crate::content::{self, Content};
use crate::tool::BoxFuture;
use crate::{Context, ToolError};

pub(crate) type PromptResult = Result<PromptReply, ToolError>;
pub(crate) type PromptHandler =
    Arc<dyn Fn(HashMap<String, String>, Context) -> BoxFuture<PromptResult> + Send + Sync>;

/// A prompt. Required arguments are checked by the SDK before the handler
/// runs: a missing one is answered with `INVALID_ARGUMENT` naming it.
#[derive(Clone)]
pub struct Prompt {
    pub(crate) meta: pb::Prompt,
    pub(crate) handler: PromptHandler,
}

impl Prompt {
    pub fn new<F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(HashMap<String, String>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<PromptReply, ToolError>> + Send + 'static,
    {
        Self {
            meta: pb::Prompt {
                name: name.into(),
                ..Default::default()
            },
            handler: Arc::new(move |args, ctx| Box::pin(handler(args, ctx))),
        }
    }

    pub fn title(mut self, title: &str) -> Self {
        self.meta.title = title.to_owned();
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.meta.description = description.to_owned();
        self
    }

    /// Declares an argument.
    pub fn argument(mut self, name: &str, description: &str, required: bool) -> Self {
        self.meta.arguments.push(PromptArgument {
            name: name.to_owned(),
            title: String::new(),
            description: description.to_owned(),
            required,
        });
        self
    }

    /// The first required argument missing from `args`, if any.
    pub(crate) fn missing_argument(&self, args: &HashMap<String, String>) -> Option<&str> {
        self.meta
            .arguments
            .iter()
            .find(|a| a.required && !args.contains_key(&a.name))
            .map(|a| a.name.as_str())
    }
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// The messages a prompt produces.
///
/// `PromptReply::user(text)` is a one-message shortcut. For more, chain
/// builder methods: `PromptReply::new().description("..").user("..").assistant("..")`.
/// (Rust cannot have an associated function and a method both called `user`
/// in one impl, so the chainable `.user()` lives in [`PromptReplyExt`],
/// which the prelude exports.)
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromptReply {
    pub description: String,
    pub messages: Vec<PromptMessage>,
}

impl PromptReply {
    /// An empty reply, to build on.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reply made of one user text message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new().message(Role::User, content::text(text))
    }

    /// Sets the reply's description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Appends an assistant text message.
    pub fn assistant(self, text: impl Into<String>) -> Self {
        self.message(Role::Assistant, content::text(text))
    }

    /// Appends any message.
    pub fn message(mut self, role: Role, content: Content) -> Self {
        self.messages.push(PromptMessage {
            role: role as i32,
            content: Some(content),
        });
        self
    }

    pub(crate) fn into_proto(self) -> GetPromptResponse {
        GetPromptResponse {
            description: self.description,
            messages: self.messages,
            input_required: None,
        }
    }
}

/// The chainable `.user(text)` of [`PromptReply`].
pub trait PromptReplyExt {
    /// Appends a user text message.
    fn user(self, text: impl Into<String>) -> Self;
}

impl PromptReplyExt for PromptReply {
    fn user(self, text: impl Into<String>) -> Self {
        self.message(Role::User, content::text(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_both_constructor_and_builder() {
        let one = PromptReply::user("hi");
        let chained = PromptReply::new()
            .description("d")
            .user("hi")
            .assistant("yo");
        assert_eq!(one.messages.len(), 1);
        assert_eq!(chained.messages.len(), 2);
        assert_eq!(chained.messages[0], one.messages[0]);
        assert_eq!(chained.messages[1].role, Role::Assistant as i32);
    }
}
