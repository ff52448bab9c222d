//! The `CaseEvent` enum, declared once from its list of variants: the enum itself, each
//! event's type name, and a deserializer that reads an event as it streams by.
//!
//! serde's derive for an internally tagged enum buffers the whole object into a tree of its
//! own before it looks at the tag, and then deserializes the variant from that tree: every
//! event read (by each stage, from each message and each loaded row) paid for a second,
//! allocating pass. Events written by this system carry their tag first — the store and
//! the relay put it there — so the variant is chosen by the first entry and read straight
//! from the rest. An object whose tag comes later is buffered as before.

macro_rules! case_events {
    ($(#[$meta:meta])* $($variant:ident),* $(,)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
        #[serde(tag = "type")]
        pub enum CaseEvent {
            $($variant($variant),)*
        }

        impl CaseEvent {
            /// Every event type, as stored and as shown in the API.
            pub const TYPE_NAMES: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The event type as stored and as shown in the API.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($variant),)*
                }
            }

            /// The event of type `tag` from the rest of its object.
            pub(crate) fn of_type<'de, D: serde::Deserializer<'de>>(tag: &str, rest: D) -> Result<Self, D::Error> {
                match tag {
                    $(stringify!($variant) => <$variant as serde::Deserialize>::deserialize(rest).map(Self::$variant),)*
                    other => Err(serde::de::Error::unknown_variant(other, Self::TYPE_NAMES)),
                }
            }
        }
    };
}

pub(crate) use case_events;

/// Reads a [`crate::CaseEvent`] from an object: by the first entry when it is the tag.
pub(crate) struct CaseEventVisitor;

impl<'de> serde::de::Visitor<'de> for CaseEventVisitor {
    type Value = crate::CaseEvent;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an event: an object with its \"type\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        use serde_json::{Map, Value};
        let Some(first) = map.next_key::<String>()? else {
            return Err(A::Error::missing_field("type"));
        };
        if first == "type" {
            let tag: String = map.next_value()?;
            return crate::CaseEvent::of_type(&tag, serde::de::value::MapAccessDeserializer::new(map));
        }
        let mut object = Map::new();
        object.insert(first, map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        let tag = match object.remove("type") {
            Some(Value::String(tag)) => tag,
            Some(_) => return Err(A::Error::custom("the event's \"type\" is not a string")),
            None => return Err(A::Error::missing_field("type")),
        };
        crate::CaseEvent::of_type(&tag, Value::Object(object)).map_err(A::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for crate::CaseEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CaseEventVisitor)
    }
}

#[cfg(test)]
mod tests {
    use crate::{CaseEvent, Retracted};

    fn retracted() -> CaseEvent {
        CaseEvent::Retracted(Retracted {
            reason: "a \"quoted\" reason".into(),
        })
    }

    #[test]
    fn an_event_reads_the_same_whether_its_tag_comes_first_or_later() {
        let first = r#"{"type":"Retracted","reason":"a \"quoted\" reason"}"#;
        let later = r#"{"reason":"a \"quoted\" reason","type":"Retracted"}"#;
        assert_eq!(serde_json::from_str::<CaseEvent>(first).unwrap(), retracted());
        assert_eq!(serde_json::from_str::<CaseEvent>(later).unwrap(), retracted());
        let written = serde_json::to_string(&retracted()).unwrap();
        assert_eq!(written, first);
        let as_value = serde_json::to_value(retracted()).unwrap();
        assert_eq!(serde_json::from_value::<CaseEvent>(as_value).unwrap(), retracted());
    }

    #[test]
    fn a_wrong_event_says_what_is_wrong() {
        let error = |json: &str| serde_json::from_str::<CaseEvent>(json).unwrap_err().to_string();
        let unknown = error(r#"{"type":"Vanished","reason":"x"}"#);
        assert!(
            unknown.starts_with("unknown variant `Vanished`, expected one of `ReportReceived`"),
            "{unknown}"
        );
        assert!(error(r#"{"reason":"x"}"#).starts_with("missing field `type`"));
        assert!(error(r#"{"reason":"x","type":7}"#).starts_with("the event's \"type\" is not a string"));
        assert!(error(r#"{"type":"Retracted"}"#).starts_with("missing field `reason`"));
        let mistyped = error(r#"{"type":"Retracted","reason":1}"#);
        assert!(
            mistyped.starts_with("invalid type: integer `1`, expected a string"),
            "{mistyped}"
        );
        let not_an_object = error(r#"["Retracted"]"#);
        assert!(
            not_an_object.starts_with("invalid type: sequence, expected an event"),
            "{not_an_object}"
        );
    }
}
