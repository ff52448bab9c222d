use super::*;
use serde::Deserialize;
use serde_json::json;

/// A sample body with one rule of each kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Sample {
    #[schemars(length(min = 1, max = 5))]
    name: String,
    #[schemars(length(min = 1, max = 2))]
    tags: Vec<String>,
    #[schemars(regex(pattern = r"^[0-9a-f]{4}$"))]
    digest: String,
    #[serde(default)]
    colour: Option<Colour>,
    #[schemars(range(max = 100))]
    #[serde(default)]
    score: Option<u8>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Colour {
    Red,
    Green,
    /// Documented, so it becomes a `const` beside the `enum` of the others.
    DeepBlue,
}

fn problems(body: Value) -> Vec<(String, String)> {
    Schema::of::<Sample>()
        .violations(&body)
        .into_iter()
        .map(|e| (e.pointer, e.message))
        .collect()
}

fn one(body: Value) -> (String, String) {
    let mut found = problems(body);
    assert_eq!(found.len(), 1, "{found:#?}");
    found.remove(0)
}

fn valid() -> Value {
    json!({"name": "ab", "tags": ["x"], "digest": "00ff"})
}

fn with(key: &str, value: Value) -> Value {
    let mut body = valid();
    body[key] = value;
    body
}

#[test]
fn a_valid_body_has_no_problems() {
    assert!(problems(valid()).is_empty());
    assert!(problems(with("colour", json!("deep_blue"))).is_empty());
}

#[test]
fn a_value_outside_an_enumeration_is_named_with_every_allowed_value() {
    assert_eq!(
        one(with("colour", json!("purple"))),
        (
            "/colour".into(),
            r#"unknown colour "purple"; one of: deep_blue, green, red"#.into()
        )
    );
}

#[test]
fn a_wrong_type_names_both_types() {
    assert_eq!(
        one(with("name", json!(7))),
        ("/name".into(), "must be a string, not a number".into())
    );
    assert_eq!(
        one(with("score", json!("high"))),
        ("/score".into(), "must be an integer or null, not a string".into())
    );
}

#[test]
fn a_pattern_is_shown() {
    assert_eq!(
        one(with("digest", json!("xyz"))),
        ("/digest".into(), r#""xyz" is not of the form ^[0-9a-f]{4}$"#.into())
    );
}

#[test]
fn lengths_say_the_limit_and_what_was_sent() {
    assert_eq!(
        one(with("name", json!(""))),
        ("/name".into(), "must not be empty".into())
    );
    assert_eq!(
        one(with("name", json!("abcdefg"))),
        ("/name".into(), "must be at most 5 characters long, not 7".into())
    );
}

#[test]
fn a_missing_property_is_pointed_at_where_it_belongs() {
    let mut body = valid();
    body.as_object_mut().unwrap().remove("digest");
    assert_eq!(one(body), ("/digest".into(), "is required, but missing".into()));
}

#[test]
fn an_unknown_property_is_named_with_the_known_ones() {
    assert_eq!(
        one(with("colur", json!("red"))),
        (
            "/colur".into(),
            r#"unknown property "colur"; known: colour, digest, name, score, tags"#.into()
        )
    );
}

#[test]
fn array_sizes_say_the_limit() {
    assert_eq!(
        one(with("tags", json!([]))),
        ("/tags".into(), "must hold at least one item".into())
    );
    assert_eq!(
        one(with("tags", json!(["a", "b", "c"]))),
        ("/tags".into(), "must hold at most 2 items, not 3; split it".into())
    );
}

#[test]
fn a_number_out_of_range_says_the_limit() {
    assert_eq!(
        one(with("score", json!(101))),
        ("/score".into(), "must be at most 100, not 101".into())
    );
}

#[test]
fn a_long_value_is_echoed_cut_short() {
    let (_, message) = one(with("digest", json!("z".repeat(500))));
    assert!(message.len() < 200, "{message}");
    assert!(message.contains('…'), "{message}");
}

#[test]
fn a_body_is_parsed_or_refused_with_every_problem() {
    let refused = json_body::<Sample>(br#"{"name": "", "tags": ["a"], "digest": "00ff", "x": 1}"#).unwrap_err();
    let ApiError::Invalid(errors) = refused else {
        panic!("{refused:?}")
    };
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, vec!["/name", "/x"]);
    assert!(matches!(json_body::<Sample>(b"{"), Err(ApiError::BadJson(_))));
    let sample = json_body::<Sample>(valid().to_string().as_bytes()).unwrap();
    assert_eq!(sample.name, "ab");
}
