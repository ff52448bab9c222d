//! Checks a submitted report and turns it into domain values. The JSON Schema generated from
//! [`SubmitReport`] is checked first (with the `jsonschema` crate); the rules a schema cannot
//! express follow. Every problem is collected with the JSON Pointer of where it is, so a
//! partner fixes a rejected report in one go.

use crate::api::{FieldError, SubmitReport};
use dijkwacht_domain::{ContentClass, HashAlgorithm, Location, MediaHash};
use dijkwacht_http::schema::{document_order, Schema};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

pub const MAX_ITEMS: usize = 10_000;
pub const MAX_URL_CHARS: usize = 2_048;

// Held here as well as in `Schema::of`'s cache: bulk intake checks every line, and this
// spares each one the cache's lock.
static REPORT_SCHEMA: LazyLock<Arc<Schema>> = LazyLock::new(Schema::of::<SubmitReport>);

#[derive(Debug, Clone, PartialEq)]
pub struct ValidReport {
    pub partner_reference: String,
    pub items: Vec<ValidItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidItem {
    pub location: Location,
    pub claimed_class: Option<ContentClass>,
}

pub fn validate_report(body: &Value) -> Result<ValidReport, Vec<FieldError>> {
    // Where both find a problem, the specific rule's message says more than the schema's.
    let mut errors = Vec::new();
    find_nul_characters(body, &mut String::new(), &mut errors);
    let items = check_items(body, &mut errors);
    // Valid reports are the common case: the quick yes/no first, the error list only on no.
    if !REPORT_SCHEMA.is_valid(body) {
        let flagged: BTreeSet<String> = errors.iter().map(|e| e.pointer.clone()).collect();
        errors.extend(
            REPORT_SCHEMA
                .violations(body)
                .into_iter()
                .filter(|e| !flagged.contains(&e.pointer)),
        );
    }
    if !errors.is_empty() {
        errors.sort_by_cached_key(|e| document_order(&e.pointer));
        return Err(errors);
    }
    let partner_reference = body["partner_reference"]
        .as_str()
        .expect("the schema requires a string partner_reference")
        .to_owned();
    Ok(ValidReport {
        partner_reference,
        items,
    })
}

/// PostgreSQL text cannot hold U+0000, so no string we keep may contain it.
fn find_nul_characters(value: &Value, pointer: &mut String, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(text) if text.contains('\0') => {
            errors.push(FieldError::new(pointer.clone(), "contains a NUL character (U+0000)"));
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = pointer.len();
                pointer.push_str(&format!("/{index}"));
                find_nul_characters(item, pointer, errors);
                pointer.truncate(length);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let length = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                find_nul_characters(item, pointer, errors);
                pointer.truncate(length);
            }
        }
        _ => {}
    }
}

/// The rules beyond the schema, on whatever parts have the right shape.
fn check_items(body: &Value, errors: &mut Vec<FieldError>) -> Vec<ValidItem> {
    let Some(items) = body.get("items").and_then(Value::as_array) else {
        return vec![];
    };
    let mut valid = Vec::with_capacity(items.len());
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let pointer = format!("/items/{index}");
        let before = errors.len();
        let url = match item.get("url").and_then(Value::as_str).map(normalize_url) {
            Some(Ok(url)) => Some(url),
            Some(Err(message)) => {
                errors.push(FieldError::new(format!("{pointer}/url"), message));
                None
            }
            None => None,
        };
        if let Some(url) = &url {
            if let Some(first) = first_seen.insert(url.clone(), index) {
                errors.push(FieldError::new(
                    format!("{pointer}/url"),
                    format!("the same location as /items/{first}/url"),
                ));
            }
        }
        let hashes: Vec<MediaHash> = item
            .get("hashes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, hash)| check_hash(hash, &format!("{pointer}/hashes/{i}"), errors))
            .collect();
        let claimed_class = item
            .get("claimed_category")
            .and_then(Value::as_str)
            .and_then(ContentClass::parse);
        if let (Some(url), true) = (url, errors.len() == before) {
            valid.push(ValidItem {
                location: Location { url, hashes },
                claimed_class,
            });
        }
    }
    valid
}

fn check_hash(hash: &Value, pointer: &str, errors: &mut Vec<FieldError>) -> Option<MediaHash> {
    let algorithm: HashAlgorithm = serde_json::from_value(hash.get("algorithm")?.clone()).ok()?;
    let value = hash.get("value")?.as_str()?;
    let quality = match hash.get("quality") {
        None | Some(Value::Null) => None,
        Some(q) => Some(u8::try_from(q.as_u64()?).ok()?),
    };
    match MediaHash::parse(algorithm, value, quality) {
        Ok(hash) => Some(hash),
        Err(error) => {
            let field = error.field();
            errors.push(FieldError::new(format!("{pointer}/{field}"), error.to_string()));
            None
        }
    }
}

/// http(s) only, no user info, host lower-cased and IDN in punycode, default port and
/// fragment dropped, at most 2,048 characters.
pub fn normalize_url(raw: &str) -> Result<String, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    let mut url = url::Url::parse(raw.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https URLs can be reported, not {}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    url.set_fragment(None);
    let normalized = url.to_string();
    if normalized.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters once normalised"));
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_normalised() {
        assert_eq!(
            normalize_url("HTTPS://Bücher.Example:443/a/B?x=1#frag").unwrap(),
            "https://xn--bcher-kva.example/a/B?x=1"
        );
        assert_eq!(
            normalize_url("http://host.example:80/").unwrap(),
            "http://host.example/"
        );
        assert!(normalize_url("ftp://host.example/x").unwrap_err().contains("http"));
        assert!(normalize_url("https://user:pw@host.example/")
            .unwrap_err()
            .contains("user name"));
        assert!(normalize_url(&format!("https://h.example/{}", "a".repeat(2100))).is_err());
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let body = json!({
            "partner_reference": "",
            "items": [
                {"url": "https://ok.example/1", "hashes": [{"algorithm": "sha256", "value": "abcd".repeat(8)}]},
                {"url": "mailto:x@example.org", "claimed_category": "spam", "extra": 1},
                {"url": "https://ok.example/1", "hashes": [{"algorithm": "whirlpool", "value": "00"}]}
            ]
        });
        let errors = validate_report(&body).unwrap_err();
        assert_eq!(
            pointers(&errors),
            vec![
                "/items/0/hashes/0/value",
                "/items/1/claimed_category",
                "/items/1/extra",
                "/items/1/url",
                "/items/2/hashes/0/algorithm",
                "/items/2/hashes/0/value",
                "/items/2/url",
                "/partner_reference",
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn an_unknown_class_is_named_with_every_class() {
        let body = json!({"partner_reference": "r", "items": [{"url": "https://a.example/", "claimed_category": "notaclass"}]});
        let errors = validate_report(&body).unwrap_err();
        let mut every_class: Vec<&str> = ContentClass::ALL.iter().map(|class| class.as_str()).collect();
        every_class.sort_unstable();
        assert_eq!(
            errors,
            vec![FieldError::new(
                "/items/0/claimed_category",
                format!(
                    "unknown content class \"notaclass\"; one of: {}",
                    every_class.join(", ")
                )
            )]
        );
    }

    #[test]
    fn a_location_twice_in_one_report_is_an_error() {
        let body = json!({"partner_reference": "r", "items": [{"url": "https://a.example/x#1"}, {"url": "https://A.example/x"}]});
        let errors = validate_report(&body).unwrap_err();
        assert_eq!(
            errors,
            vec![FieldError::new("/items/1/url", "the same location as /items/0/url")]
        );
    }

    #[test]
    fn a_valid_report_becomes_domain_values() {
        let body = json!({"partner_reference": "r-1", "items": [{"url": "https://a.example/x", "hashes": [{"algorithm": "sha256", "value": "AB".repeat(32)}], "claimed_category": "csam"}]});
        let report = validate_report(&body).unwrap();
        assert_eq!(report.items[0].location.hashes[0].value, "ab".repeat(32));
        assert_eq!(report.items[0].claimed_class, Some(ContentClass::Csam));
    }

    #[test]
    fn nul_characters_are_refused_where_they_are() {
        let body = json!({"partner_reference": "a\u{0}b", "items": [{"url": "https://a.example/"}]});
        let errors = validate_report(&body).unwrap_err();
        assert_eq!(pointers(&errors), vec!["/partner_reference"]);
    }

    #[test]
    fn too_many_items_are_refused_by_the_schema() {
        let items: Vec<Value> = (0..=MAX_ITEMS)
            .map(|i| json!({"url": format!("https://a.example/{i}")}))
            .collect();
        let errors = validate_report(&json!({"partner_reference": "r", "items": items})).unwrap_err();
        assert_eq!(pointers(&errors), vec!["/items"]);
    }
}
