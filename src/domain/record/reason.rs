//! How a reason names what it got: a value quoted and cut to a readable length, a JSON
//! value by its type. Every rule of a record writes its reasons with these.

use serde_json::Value;

/// Bad values are quoted in reasons; a huge value is cut so the reason stays readable.
const MAX_SHOWN_CHARS: usize = 60;

/// How a JSON value's type reads in a reason ("a number", "a list", …).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Quotes a user value for a reason, cut to a readable length and with control characters escaped.
pub(super) fn show(s: &str) -> String {
    if s.chars().count() <= MAX_SHOWN_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{head:?}…")
    }
}
