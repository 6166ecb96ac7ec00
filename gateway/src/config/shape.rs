//! Shape errors (a wrong type, an unknown key), all of them at once. serde
//! stops at the first; so each error's value is taken out of the document
//! and it is read again, until it reads or nothing more can be taken out.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use serde_yaml::Value;

use super::Problem;

/// More than this many is more than anyone reads in one go.
const MAX_PROBLEMS: usize = 20;

/// `text` as `T`, or every shape problem found. The first problem's message
/// keeps the parser's line and column.
pub(super) fn read<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Problem>> {
    let first = match serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(t) => return Ok(t),
        Err(e) => found(&e),
    };
    let Ok(mut doc) = serde_yaml::from_str::<Value>(text) else {
        // Not YAML at all: the parser's one error is all there is.
        return Err(vec![first.0]);
    };
    // As the text's own reader does: `<<` merge keys.
    let _ = doc.apply_merge();
    let mut problems = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut next = first;
    loop {
        let (problem, steps) = next;
        let gone = take_out(&mut doc, &problem, &steps);
        if gone {
            removed.push(problem.field.clone());
        }
        problems.push(problem);
        if !gone || problems.len() == MAX_PROBLEMS {
            break;
        }
        match serde_path_to_error::deserialize::<_, T>(doc.clone()) {
            Ok(_) => break,
            Err(e) => {
                next = found(&e);
                // A required key we took out is not the user's mistake.
                let (p, _) = &next;
                if let Some(key) = missing_key(&p.message) {
                    let path = match p.field.as_str() {
                        "(top level)" => key.to_string(),
                        parent => format!("{parent}.{key}"),
                    };
                    if removed.contains(&path) {
                        break;
                    }
                }
            }
        }
    }
    Err(problems)
}

/// `key` of serde's "missing field `key`".
fn missing_key(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

enum Step {
    Key(String),
    Index(usize),
    /// An enum variant or a position serde does not name.
    Other,
}

fn found(e: &serde_path_to_error::Error<serde_yaml::Error>) -> (Problem, Vec<Step>) {
    let field = match e.path().to_string() {
        p if p == "." => "(top level)".to_string(),
        p => p,
    };
    let message = clean(&field, &e.inner().to_string());
    let steps = e
        .path()
        .iter()
        .map(|s| match s {
            Segment::Map { key } => Step::Key(key.clone()),
            Segment::Seq { index } => Step::Index(*index),
            _ => Step::Other,
        })
        .collect();
    (Problem { field, message }, steps)
}

/// serde_yaml repeats the path at the start of some messages.
fn clean(field: &str, msg: &str) -> String {
    let msg = msg.trim();
    match msg.split_once(": ") {
        Some((prefix, rest)) if field.starts_with(prefix) => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// Removes the value `p` is about, so the next read gets past it. False
/// when it cannot be removed (a list item, a missing key, the top level).
fn take_out(doc: &mut Value, p: &Problem, steps: &[Step]) -> bool {
    if p.message.starts_with("missing field") {
        return false;
    }
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut at = doc;
    for step in parents {
        at = match (step, at) {
            (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, at) {
        // Shifted, not swapped: the rest keep their order, so do the problems.
        (Step::Key(k), Value::Mapping(m)) => m.shift_remove(k.as_str()).is_some(),
        _ => false,
    }
}
