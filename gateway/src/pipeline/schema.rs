//! JSON Schema 2020-12 validation. Each schema is compiled once, when its
//! provider's capabilities are loaded, and shared by every call.

use serde_json::Value;

/// How many violations one error message lists before "and N more".
const MAX_REPORTED: usize = 5;

pub struct Schema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    /// Compiles `schema` as 2020-12 unless it declares another `$schema`.
    /// Remote `$ref`s are not fetched (the crate is built without network
    /// support), so a schema can never make the gateway call out.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        if !schema.is_object() {
            return Err("a schema must be a JSON object".into());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(Self { validator })
    }

    /// `Ok` or a message naming each failing instance path and the rule
    /// (schema keyword) it breaks, e.g.
    /// `/numbers/1: "x" is not of type "number" (rule: type)`.
    pub fn check(&self, instance: &Value) -> Result<(), String> {
        let mut errors = self.validator.iter_errors(instance);
        let Some(first) = errors.next() else {
            return Ok(());
        };
        let mut parts = vec![describe(&first)];
        let mut extra = 0usize;
        for e in errors {
            if parts.len() < MAX_REPORTED {
                parts.push(describe(&e));
            } else {
                extra += 1;
            }
        }
        let mut msg = parts.join("; ");
        if extra > 0 {
            msg.push_str(&format!("; and {extra} more"));
        }
        Err(msg)
    }
}

fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let path = e.instance_path().to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let rule = e
        .schema_path()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    format!("{path}: {e} (rule: {rule})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_path_and_rule() {
        let s = Schema::compile(&json!({
            "type": "object",
            "properties": {"numbers": {"type": "array", "items": {"type": "number"}}},
            "required": ["numbers"]
        }))
        .unwrap();
        assert!(s.check(&json!({"numbers": [1, 2]})).is_ok());
        let err = s.check(&json!({"numbers": [1, "x"]})).unwrap_err();
        assert!(err.starts_with("/numbers/1: "), "{err}");
        assert!(err.ends_with("(rule: type)"), "{err}");
        let err = s.check(&json!({})).unwrap_err();
        assert!(err.contains("(rule: required)"), "{err}");
        assert!(err.contains("numbers"), "{err}");
    }

    #[test]
    fn rejects_non_object_schema() {
        assert!(Schema::compile(&json!(true)).is_err());
    }

    /// A schema is checked against its draft's meta-schema before use
    /// (jsonschema's generated meta-validators, the `macros` feature).
    #[test]
    fn refuses_a_schema_its_meta_schema_refuses() {
        for bad in [
            json!({"type": "strng"}),
            json!({"type": "string", "minLength": -1}),
            json!({"properties": {"a": {"required": "a"}}}),
        ] {
            let err = Schema::compile(&bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = Schema::compile(&json!({"minLength": -1})).unwrap_err();
        assert!(err.contains("-1"), "{err}");
    }
}
