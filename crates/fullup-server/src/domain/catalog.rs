//! The event-type catalog: the types a site sends, each with a description, an
//! optional JSON Schema of its `data` and an example, so receivers know what they will
//! get; and the rules of a site's strict mode, where webhooks only subscribe to, and
//! events only use, catalogued types.
//!
//! A schema is a site's input, run against every event of its type, so it is bounded
//! before it is stored: its size, its nesting, no references (a graph of `$ref`s can
//! make validation exponential in the schema's size; a tree cannot), no remote
//! resources, and `pattern`s compiled by a linear-time regex engine with a size limit.
//! What one site registers therefore costs its own ingests a bounded time, and nothing
//! to another site's.

use std::sync::Arc;

use serde_json::Value;

use super::event_type::{EventFilter, EventType};
use super::ids::SiteId;
use super::operational;
use super::time::Timestamp;

/// Event types a site may catalogue.
pub const MAX_EVENT_TYPES_PER_SITE: usize = 200;
/// The largest schema, in bytes of compact JSON: enough for a detailed object of a few
/// hundred properties.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// The largest example, in bytes of compact JSON.
pub const MAX_EXAMPLE_BYTES: usize = 16 * 1024;
/// The deepest nesting of a schema document (objects and arrays).
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// The compiled size limit of one `pattern` (the regex crate's `size_limit`).
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;
/// Keywords that refer to other schemas, refused (see the module's documentation).
const REFERENCES: [&str; 3] = ["$ref", "$dynamicRef", "$recursiveRef"];

/// Why a schema or an example was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// Over [`MAX_SCHEMA_BYTES`].
    #[error("the schema is {0} bytes; at most {MAX_SCHEMA_BYTES} are accepted")]
    TooLarge(usize),
    /// Nested deeper than [`MAX_SCHEMA_DEPTH`].
    #[error("the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")]
    TooDeep,
    /// A reference keyword.
    #[error("the schema uses `{0}`: references are not accepted; write the subschema in place")]
    Reference(String),
    /// Not a JSON Schema the validator compiles (the message says why).
    #[error("the schema is not a valid JSON Schema: {0}")]
    Invalid(String),
    /// The example is over [`MAX_EXAMPLE_BYTES`].
    #[error("the example is {0} bytes; at most {MAX_EXAMPLE_BYTES} are accepted")]
    ExampleTooLarge(usize),
    /// The example does not match the schema.
    #[error("the example does not match the schema: {0}")]
    ExampleMismatch(Mismatch),
}

/// Where data first fails a schema, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The JSON Pointer (RFC 6901) of the failing value in `data`; empty for `data`
    /// itself.
    pub pointer: String,
    /// What is wrong, without the value (which is customer data).
    pub message: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at `{}`: {}", self.pointer, self.message)
    }
}

/// A schema that passed the bounds and compiles: its compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSchema(String);

impl EventSchema {
    /// Parses a schema document within the bounds, refusing references, and compiles
    /// it once to prove it valid.
    pub fn parse(schema: &Value) -> Result<Self, SchemaError> {
        let text = schema.to_string();
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(SchemaError::TooLarge(text.len()));
        }
        check_tree(schema, 0)?;
        compile(schema)?;
        Ok(Self(text))
    }

    /// A stored schema, trusted as the service wrote it.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// Its compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compiles it (see [`compile`]).
    pub fn compile(&self) -> Result<Arc<jsonschema::Validator>, SchemaError> {
        let value: Value =
            serde_json::from_str(&self.0).map_err(|e| SchemaError::Invalid(e.to_string()))?;
        compile(&value).map(Arc::new)
    }
}

fn check_tree(value: &Value, depth: usize) -> Result<(), SchemaError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(SchemaError::TooDeep);
    }
    match value {
        Value::Object(map) => {
            if let Some(key) = REFERENCES.iter().find(|k| map.contains_key(**k)) {
                return Err(SchemaError::Reference((*key).to_owned()));
            }
            map.values().try_for_each(|v| check_tree(v, depth + 1))
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_tree(v, depth + 1)),
        _ => Ok(()),
    }
}

/// Compiles `schema` offline (no remote or file resources), with linear-time,
/// size-limited patterns, `format` as an annotation only.
fn compile(schema: &Value) -> Result<jsonschema::Validator, SchemaError> {
    jsonschema::options()
        .offline()
        .should_validate_formats(false)
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(MAX_PATTERN_BYTES)
                .dfa_size_limit(MAX_PATTERN_BYTES),
        )
        .build(schema)
        .map_err(|e| SchemaError::Invalid(e.masked().to_string()))
}

/// The first place `data` fails `validator`, if it does.
pub fn first_mismatch(validator: &jsonschema::Validator, data: &Value) -> Option<Mismatch> {
    validator.validate(data).err().map(|e| Mismatch {
        pointer: e.instance_path().to_string(),
        message: e.masked().to_string(),
    })
}

/// Checks an example against a schema (when there is one) and the size bound.
pub fn check_example(schema: Option<&EventSchema>, example: &Value) -> Result<String, SchemaError> {
    let text = example.to_string();
    if text.len() > MAX_EXAMPLE_BYTES {
        return Err(SchemaError::ExampleTooLarge(text.len()));
    }
    if let Some(schema) = schema
        && let Some(mismatch) = first_mismatch(&*schema.compile()?, example)
    {
        return Err(SchemaError::ExampleMismatch(mismatch));
    }
    Ok(text)
}

/// One catalogued event type of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeEntry {
    /// The site it belongs to.
    pub site_id: SiteId,
    /// The type's name, such as `form.submitted`; unique within the site.
    pub name: EventType,
    /// Free text for the people writing receivers, at most 1000 characters.
    pub description: String,
    /// The schema events of this type must match, if any.
    pub schema: Option<EventSchema>,
    /// An example of `data` (compact JSON), matching the schema.
    pub example: Option<String>,
    /// When it was first catalogued.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// Why a strict site refuses something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrictError {
    /// An exact filter or an event of a type the catalog does not hold.
    #[error(
        "event type `{0}` is not in this site's catalog, and the site is in strict mode: PUT /v1/sites/{{site_id}}/event-types/{0} first"
    )]
    Unknown(String),
    /// A prefix filter that matches no catalogued type.
    #[error(
        "filter `{0}` matches no type in this site's catalog, and the site is in strict mode: catalogue a type it matches first"
    )]
    NoMatch(String),
}

/// Whether a strict site's webhook may subscribe with `filters`, given the catalogued
/// type names: `*` always (it means every catalogued type); `prefix.*` when it
/// matches at least one; an exact name when it is catalogued or one of the service's
/// own event types (which are never catalogued).
pub fn strict_filters<'a>(
    filters: &[EventFilter],
    catalogued: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<(), StrictError> {
    for filter in filters {
        let mut names = catalogued.clone().into_iter();
        match filter {
            EventFilter::All => {}
            EventFilter::Prefix(_) => {
                if !names.any(|n| filter.matches(n)) {
                    return Err(StrictError::NoMatch(filter.to_string()));
                }
            }
            EventFilter::Exact(name) => {
                if !operational::is_operational(name) && !names.any(|n| n == name) {
                    return Err(StrictError::Unknown(name.clone()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_valid_schema_compiles_and_finds_the_first_mismatch_with_its_pointer() {
        let schema = EventSchema::parse(&json!({
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "integer", "minimum": 0},
                           "items": {"type": "array", "items": {"type": "string"}}}
        }))
        .expect("valid");
        let v = schema.compile().expect("compiles");
        assert_eq!(first_mismatch(&v, &json!({"amount": 3})), None);
        let m = first_mismatch(&v, &json!({"amount": -1})).expect("mismatch");
        assert_eq!(m.pointer, "/amount");
        let m = first_mismatch(&v, &json!({"amount": 1, "items": ["a", 2]})).expect("mismatch");
        assert_eq!(m.pointer, "/items/1");
        let m = first_mismatch(&v, &json!({})).expect("mismatch");
        assert_eq!(m.pointer, "");
    }

    #[test]
    fn hostile_schemas_are_refused() {
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(matches!(
            EventSchema::parse(&big),
            Err(SchemaError::TooLarge(_))
        ));
        let mut deep = json!({"type": "object"});
        for _ in 0..40 {
            deep = json!({"properties": {"a": deep}});
        }
        assert_eq!(EventSchema::parse(&deep), Err(SchemaError::TooDeep));
        let refs =
            json!({"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}});
        assert_eq!(
            EventSchema::parse(&refs),
            Err(SchemaError::Reference("$ref".into()))
        );
        assert!(matches!(
            EventSchema::parse(&json!({"type": "nonsense"})),
            Err(SchemaError::Invalid(_))
        ));
        // Backreferences need a backtracking engine: refused, not run.
        assert!(matches!(
            EventSchema::parse(&json!({"pattern": "^(a+)\\1$"})),
            Err(SchemaError::Invalid(_))
        ));
    }

    #[test]
    fn a_catastrophic_pattern_runs_in_linear_time() {
        let schema =
            EventSchema::parse(&json!({"type": "string", "pattern": "^(a+)+$"})).expect("valid");
        let v = schema.compile().expect("compiles");
        let hostile = format!("{}!", "a".repeat(100_000));
        assert!(first_mismatch(&v, &json!(hostile)).is_some());
    }

    #[test]
    fn examples_must_match_the_schema() {
        let schema =
            EventSchema::parse(&json!({"type": "object", "required": ["id"]})).expect("valid");
        assert!(check_example(Some(&schema), &json!({"id": 1})).is_ok());
        assert!(matches!(
            check_example(Some(&schema), &json!({})),
            Err(SchemaError::ExampleMismatch(_))
        ));
        assert!(check_example(None, &json!("anything")).is_ok());
    }

    #[test]
    fn strict_filters_need_a_catalogued_match() {
        let names = ["form.submitted", "order.paid"];
        let f = |s: &str| vec![EventFilter::parse(s).expect("filter")];
        assert!(strict_filters(&f("*"), names).is_ok());
        assert!(strict_filters(&f("form.*"), names).is_ok());
        assert!(strict_filters(&f("form.submitted"), names).is_ok());
        assert!(strict_filters(&f("webhook.disabled"), names).is_ok());
        assert_eq!(
            strict_filters(&f("user.*"), names),
            Err(StrictError::NoMatch("user.*".into()))
        );
        assert_eq!(
            strict_filters(&f("form.deleted"), names),
            Err(StrictError::Unknown("form.deleted".into()))
        );
    }
}
