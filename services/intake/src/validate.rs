//! Checks a submitted report and turns it into domain values, collecting every problem
//! with the JSON Pointer of where it is, so a partner fixes a rejected report in one go.

use crate::api::FieldError;
use dijkwacht_domain::{ContentClass, HashAlgorithm, Location, MediaHash};
use serde_json::{Map, Value};

pub const MAX_ITEMS: usize = 10_000;
pub const MAX_URL_CHARS: usize = 2_048;
const MAX_REFERENCE_CHARS: usize = 200;

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

/// Collects errors against pointers under a base path.
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, pointer: String, message: impl Into<String>) {
        self.0.push(FieldError::new(pointer, message));
    }
}

pub fn validate_report(body: &Value) -> Result<ValidReport, Vec<FieldError>> {
    let mut errors = Errors(Vec::new());
    let Some(object) = body.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    unknown_fields(object, &["partner_reference", "items"], "", &mut errors);
    let partner_reference = match object.get("partner_reference") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.add("/partner_reference".into(), "must not be empty");
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_REFERENCE_CHARS => {
            errors.add(
                "/partner_reference".into(),
                format!("at most {MAX_REFERENCE_CHARS} characters"),
            );
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.add("/partner_reference".into(), "must be a string");
            None
        }
        None => {
            errors.add("/partner_reference".into(), "is required");
            None
        }
    };
    let mut items = Vec::new();
    match object.get("items") {
        Some(Value::Array(list)) if list.is_empty() => errors.add("/items".into(), "must name at least one location"),
        Some(Value::Array(list)) if list.len() > MAX_ITEMS => errors.add(
            "/items".into(),
            format!("at most {MAX_ITEMS} items per report, got {}", list.len()),
        ),
        Some(Value::Array(list)) => {
            let mut seen = std::collections::HashMap::new();
            for (index, item) in list.iter().enumerate() {
                let pointer = format!("/items/{index}");
                if let Some(valid) = validate_item(item, &pointer, &mut errors) {
                    if let Some(first) = seen.insert(valid.location.url.clone(), index) {
                        errors.add(
                            format!("{pointer}/url"),
                            format!("the same location as /items/{first}/url"),
                        );
                    }
                    items.push(valid);
                }
            }
        }
        Some(_) => errors.add("/items".into(), "must be an array"),
        None => errors.add("/items".into(), "is required"),
    }
    match partner_reference {
        Some(partner_reference) if errors.0.is_empty() => Ok(ValidReport {
            partner_reference,
            items,
        }),
        _ => Err(errors.0),
    }
}

fn unknown_fields(object: &Map<String, Value>, known: &[&str], pointer: &str, errors: &mut Errors) {
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.add(format!("{pointer}/{}", escape(key)), "unknown field");
    }
}

/// RFC 6901 escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn validate_item(item: &Value, pointer: &str, errors: &mut Errors) -> Option<ValidItem> {
    let Some(object) = item.as_object() else {
        errors.add(pointer.to_owned(), "must be an object");
        return None;
    };
    let before = errors.0.len();
    unknown_fields(object, &["url", "hashes", "claimed_category"], pointer, errors);
    let url = match object.get("url") {
        Some(Value::String(raw)) => match normalize_url(raw) {
            Ok(url) => Some(url),
            Err(message) => {
                errors.add(format!("{pointer}/url"), message);
                None
            }
        },
        Some(_) => {
            errors.add(format!("{pointer}/url"), "must be a string");
            None
        }
        None => {
            errors.add(format!("{pointer}/url"), "is required");
            None
        }
    };
    let mut hashes = Vec::new();
    match object.get("hashes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (index, hash) in list.iter().enumerate() {
                if let Some(hash) = validate_hash(hash, &format!("{pointer}/hashes/{index}"), errors) {
                    hashes.push(hash);
                }
            }
        }
        Some(_) => errors.add(format!("{pointer}/hashes"), "must be an array"),
    }
    let claimed_class = match object.get("claimed_category") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match ContentClass::parse(name) {
            Some(class) => Some(class),
            None => {
                let known: Vec<&str> = ContentClass::ALL.iter().map(|c| c.as_str()).collect();
                errors.add(
                    format!("{pointer}/claimed_category"),
                    format!("unknown category {name:?}; one of: {}", known.join(", ")),
                );
                None
            }
        },
        Some(_) => {
            errors.add(format!("{pointer}/claimed_category"), "must be a string");
            None
        }
    };
    if errors.0.len() > before {
        return None;
    }
    Some(ValidItem {
        location: Location { url: url?, hashes },
        claimed_class,
    })
}

fn validate_hash(hash: &Value, pointer: &str, errors: &mut Errors) -> Option<MediaHash> {
    let Some(object) = hash.as_object() else {
        errors.add(pointer.to_owned(), "must be an object");
        return None;
    };
    unknown_fields(object, &["algorithm", "value", "quality"], pointer, errors);
    let algorithm = match object.get("algorithm").and_then(Value::as_str) {
        Some("md5") => HashAlgorithm::Md5,
        Some("sha1") => HashAlgorithm::Sha1,
        Some("sha256") => HashAlgorithm::Sha256,
        Some("pdq") => HashAlgorithm::Pdq,
        _ => {
            errors.add(format!("{pointer}/algorithm"), "must be one of md5, sha1, sha256, pdq");
            return None;
        }
    };
    let Some(value) = object.get("value").and_then(Value::as_str) else {
        errors.add(format!("{pointer}/value"), "must be a string of hexadecimal digits");
        return None;
    };
    let quality = match object.get("quality") {
        None | Some(Value::Null) => None,
        Some(q) => match q.as_u64().and_then(|q| u8::try_from(q).ok()) {
            Some(q) => Some(q),
            None => {
                errors.add(format!("{pointer}/quality"), "must be an integer from 0 to 100");
                return None;
            }
        },
    };
    match MediaHash::parse(algorithm, value, quality) {
        Ok(hash) => Some(hash),
        Err(error) => {
            let field = if matches!(
                error,
                dijkwacht_domain::HashError::QualityOutOfRange(_) | dijkwacht_domain::HashError::QualityWithoutPdq
            ) {
                "quality"
            } else {
                "value"
            };
            errors.add(format!("{pointer}/{field}"), error.to_string());
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

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let body = json!({
            "partner_reference": "",
            "items": [
                {"url": "https://ok.example/1", "hashes": [{"algorithm": "sha256", "value": "abc"}]},
                {"url": "mailto:x@example.org", "claimed_category": "spam", "extra": 1},
                {"url": "https://ok.example/1"}
            ]
        });
        let errors = validate_report(&body).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec![
                "/partner_reference",
                "/items/0/hashes/0/value",
                "/items/1/extra",
                "/items/1/url",
                "/items/1/claimed_category",
            ]
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
}
