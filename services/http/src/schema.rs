//! A request body checked against the JSON Schema generated from its type, with every
//! problem said as a sentence a partner's engineer can act on: what is wrong, where (a JSON
//! Pointer), and what would be right. The validator's own words ("value is not valid under
//! any of the schemas listed in the 'anyOf' keyword") name the rule, not the fix.

use crate::error::{ApiError, FieldError};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// A compiled schema and the document it came from, which names what the validator's
/// errors only point at (the type of an enumeration, the properties an object allows).
pub struct Schema {
    validator: Validator,
    document: Value,
}

impl Schema {
    pub fn new(document: Value) -> Self {
        let validator = jsonschema::validator_for(&document).expect("a generated schema is a valid JSON Schema");
        Self { validator, document }
    }

    /// The schema of `T`, compiled once per process.
    pub fn of<T: JsonSchema + 'static>() -> Arc<Schema> {
        static COMPILED: LazyLock<Mutex<HashMap<TypeId, Arc<Schema>>>> = LazyLock::new(Default::default);
        let mut compiled = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        compiled
            .entry(TypeId::of::<T>())
            .or_insert_with(|| {
                let document = serde_json::to_value(schemars::schema_for!(T)).expect("a schema serializes");
                Arc::new(Schema::new(document))
            })
            .clone()
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Every way `instance` breaks the schema, one sentence each, at its pointer, in the
    /// order the document reads.
    pub fn violations(&self, instance: &Value) -> Vec<FieldError> {
        let mut found = Vec::new();
        for error in self.validator.iter_errors(instance) {
            self.explain(&error, &mut found);
        }
        found.sort_by_cached_key(|e| document_order(&e.pointer));
        found
    }

    fn explain(&self, error: &ValidationError<'_>, found: &mut Vec<FieldError>) {
        let pointer = error.instance_path().to_string();
        let value = error.instance().as_ref();
        let message = match error.kind() {
            ValidationErrorKind::Type { kind } => format!("must be {}, not {}", expected_types(kind), type_of(value)),
            ValidationErrorKind::Enum { options } => {
                let allowed = options.as_array().map(Vec::as_slice).unwrap_or_default();
                self.unknown_value(error, value, allowed.iter())
            }
            ValidationErrorKind::Constant { expected_value } => {
                format!("must be {}, not {}", shown(expected_value), shown(value))
            }
            ValidationErrorKind::Pattern { pattern } => match self.description(error) {
                Some(description) => format!("{} is not of the form {pattern}: {description}", shown(value)),
                None => format!("{} is not of the form {pattern}", shown(value)),
            },
            ValidationErrorKind::MinLength { limit: 1 } => "must not be empty".to_owned(),
            ValidationErrorKind::MinLength { limit } => {
                format!("must be at least {limit} characters long, not {}", char_count(value))
            }
            ValidationErrorKind::MaxLength { limit } => {
                format!("must be at most {limit} characters long, not {}", char_count(value))
            }
            ValidationErrorKind::MinItems { limit: 1 } => "must hold at least one item".to_owned(),
            ValidationErrorKind::MinItems { limit } => {
                format!("must hold at least {limit} items, not {}", item_count(value))
            }
            ValidationErrorKind::MaxItems { limit } => {
                format!("must hold at most {limit} items, not {}; split it", item_count(value))
            }
            ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}, not {}", shown(value)),
            ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}, not {}", shown(value)),
            ValidationErrorKind::ExclusiveMinimum { limit } => {
                format!("must be more than {limit}, not {}", shown(value))
            }
            ValidationErrorKind::ExclusiveMaximum { limit } => {
                format!("must be less than {limit}, not {}", shown(value))
            }
            ValidationErrorKind::UniqueItems => "must not hold the same item twice".to_owned(),
            ValidationErrorKind::Format { format } => format!("{} is not a valid {format}", shown(value)),
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                found.push(FieldError::new(child(&pointer, name), "is required, but missing"));
                return;
            }
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let known = self.known_properties(error);
                for name in unexpected {
                    let message = match known.as_slice() {
                        [] => format!("unknown property \"{name}\"; this object takes none"),
                        known => format!("unknown property \"{name}\"; known: {}", known.join(", ")),
                    };
                    found.push(FieldError::new(child(&pointer, name), message));
                }
                return;
            }
            ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
                self.explain_alternatives(error, value, context, found);
                return;
            }
            _ => error.masked().to_string(),
        };
        found.push(FieldError::new(pointer, message));
    }

    /// None of several forms fits. A form the value does not even have the type of is no
    /// hint (an optional field's `null` form, a string enumeration's other strings); of the
    /// rest, choices of values are named together, and otherwise the closest form speaks.
    fn explain_alternatives(
        &self,
        error: &ValidationError<'_>,
        value: &Value,
        branches: &[Vec<ValidationError<'static>>],
        found: &mut Vec<FieldError>,
    ) {
        let at = error.instance_path();
        let is_wrong_type = |branch: &Vec<ValidationError<'static>>| matches!(branch.as_slice(), [only] if only.instance_path() == at && matches!(only.kind(), ValidationErrorKind::Type { .. }));
        let fitting: Vec<_> = branches.iter().filter(|branch| !is_wrong_type(branch)).collect();
        if fitting.is_empty() {
            let expected: Vec<String> = branches
                .iter()
                .flatten()
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Type { kind } => Some(expected_types(kind)),
                    _ => None,
                })
                .collect();
            found.push(FieldError::new(
                at.to_string(),
                format!("must be {}, not {}", expected.join(" or "), type_of(value)),
            ));
            return;
        }
        let mut choices = Vec::new();
        if collect_choices(&fitting, at, &mut choices) {
            let first = fitting
                .iter()
                .flat_map(|branch| branch.iter())
                .next()
                .expect("a fitting form has an error");
            found.push(FieldError::new(
                at.to_string(),
                self.unknown_value(first, value, choices.iter()),
            ));
            return;
        }
        let closest = fitting.iter().min_by_key(|branch| branch.len()).expect("not empty");
        for inner in closest.iter() {
            self.explain(inner, found);
        }
    }

    fn unknown_value<'v>(
        &self,
        error: &ValidationError<'_>,
        value: &Value,
        allowed: impl Iterator<Item = &'v Value>,
    ) -> String {
        // Sorted: a reader scans a long list for the word they meant.
        let allowed: std::collections::BTreeSet<String> = allowed.map(bare).collect();
        let allowed: Vec<String> = allowed.into_iter().collect();
        format!(
            "unknown {} {}; one of: {}",
            self.noun(error),
            shown(value),
            allowed.join(", ")
        )
    }

    /// What the enumeration enumerates: its definition's name (`ContentClass` → "content
    /// class"), or else the name of the property that holds it.
    fn noun(&self, error: &ValidationError<'_>) -> String {
        let schema_path = error.schema_path().to_string();
        let segments: Vec<&str> = schema_path.split('/').collect();
        let definition = segments
            .windows(2)
            .filter(|pair| pair[0] == "$defs" || pair[0] == "definitions")
            .map(|pair| pair[1])
            .next_back();
        match definition {
            Some(name) => words(name),
            None => {
                let instance_path = error.instance_path().to_string();
                let property = instance_path.rsplit('/').find(|token| token.parse::<u64>().is_err());
                property
                    .filter(|p| !p.is_empty())
                    .map(words)
                    .unwrap_or_else(|| "value".to_owned())
            }
        }
    }

    /// The schema node a keyword belongs to: its location without the keyword.
    fn node(&self, error: &ValidationError<'_>) -> Option<&Value> {
        let schema_path = error.schema_path().to_string();
        let parent = schema_path.rsplit_once('/').map_or("", |(parent, _)| parent);
        self.document.pointer(parent)
    }

    fn description(&self, error: &ValidationError<'_>) -> Option<&str> {
        self.node(error)?.get("description")?.as_str()
    }

    fn known_properties(&self, error: &ValidationError<'_>) -> Vec<String> {
        self.node(error)
            .and_then(|node| node.get("properties"))
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Parses a request body as `T`: not JSON → 400; JSON that breaks `T`'s schema → 422 with
/// every problem; then the typed value.
pub fn json_body<T: DeserializeOwned + JsonSchema + 'static>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadJson(format!("the body is not valid JSON: {e}")))?;
    let schema = Schema::of::<T>();
    if !schema.is_valid(&value) {
        return Err(ApiError::Invalid(schema.violations(&value)));
    }
    // The schema and the type agree, so this fails only where a type checks more than its
    // schema says; the serde message is then the best there is.
    serde_json::from_value(value).map_err(|e| ApiError::Invalid(vec![FieldError::new("", e.to_string())]))
}

/// Whether every fitting form failed only by not being one of its values; gathers them.
fn collect_choices(
    branches: &[&Vec<ValidationError<'static>>],
    at: &jsonschema::paths::Location,
    choices: &mut Vec<Value>,
) -> bool {
    for error in branches.iter().flat_map(|branch| branch.iter()) {
        if error.instance_path() != at {
            return false;
        }
        match error.kind() {
            ValidationErrorKind::Enum { options } => choices.extend(options.as_array().into_iter().flatten().cloned()),
            ValidationErrorKind::Constant { expected_value } => choices.push(expected_value.as_ref().clone()),
            ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
                let nested: Vec<_> = context.iter().collect();
                if !collect_choices(&nested, at, choices) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    !choices.is_empty()
}

/// Sorts pointers as the document reads: `/items/2` before `/items/10`.
pub fn document_order(pointer: &str) -> Vec<(u64, String)> {
    pointer
        .split('/')
        .map(|token| match token.parse::<u64>() {
            Ok(index) => (index, String::new()),
            Err(_) => (u64::MAX, token.to_owned()),
        })
        .collect()
}

fn child(pointer: &str, name: &str) -> String {
    format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// `ContentClass` or `claimed_category` → "content class", "claimed category".
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c == '_' || c == '-' {
            out.push(' ');
        } else if c.is_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn expected_types(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(single) => with_article(*single),
        // `null` last: "an integer or null" reads as the optional integer it is.
        TypeKind::Multiple(set) => {
            let (nulls, others): (Vec<_>, Vec<_>) = set.iter().partition(|kind| *kind == JsonType::Null);
            others
                .into_iter()
                .chain(nulls)
                .map(with_article)
                .collect::<Vec<_>>()
                .join(" or ")
        }
    }
}

fn with_article(kind: JsonType) -> String {
    match kind {
        JsonType::Null => "null".to_owned(),
        JsonType::Integer | JsonType::Object | JsonType::Array => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as the caller sent it, cut short: an error echoes, it does not copy.
fn shown(value: &Value) -> String {
    const LONGEST: usize = 80;
    let text = match value {
        Value::Array(_) => return "the array".to_owned(),
        Value::Object(_) => return "the object".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() <= LONGEST {
        return text;
    }
    let cut: String = text.chars().take(LONGEST).collect();
    format!("{cut}…")
}

/// An allowed value in a list: strings without their quotes.
fn bare(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn char_count(value: &Value) -> usize {
    value.as_str().map_or(0, |text| text.chars().count())
}

fn item_count(value: &Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests;
