//! The Kafka topics between stages, and which event travels on which.

use dijkwacht_domain::CaseEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Reports,
    Classifications,
    Notices,
    Dispatches,
    Followups,
    /// Messages a stage could not decode or decide, with the reason in the headers.
    DeadLetter,
}

impl Topic {
    pub const ALL: [Topic; 6] = [
        Topic::Reports,
        Topic::Classifications,
        Topic::Notices,
        Topic::Dispatches,
        Topic::Followups,
        Topic::DeadLetter,
    ];

    /// Every topic that carries case events.
    pub const EVENTS: [Topic; 5] = [
        Topic::Reports,
        Topic::Classifications,
        Topic::Notices,
        Topic::Dispatches,
        Topic::Followups,
    ];

    /// The logical name, stored in the outbox; the broker sees it behind the deployment's prefix.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Reports => "reports",
            Topic::Classifications => "classifications",
            Topic::Notices => "notices",
            Topic::Dispatches => "dispatches",
            Topic::Followups => "followups",
            Topic::DeadLetter => "dead-letter",
        }
    }

    pub fn for_event(event: &CaseEvent) -> Topic {
        Self::for_type(event.type_name()).expect("every event type travels on a topic (tested)")
    }

    /// The topic of the event type `type_name` ([`CaseEvent::type_name`]), if there is one.
    pub fn for_type(type_name: &str) -> Option<Topic> {
        Some(match type_name {
            "ReportReceived" | "ReportedAgain" | "Reappeared" => Topic::Reports,
            "HostResolved"
            | "Classified"
            | "ReviewRequested"
            | "ReviewClaimed"
            | "AnalystDecided"
            | "ForwardedToHotline"
            | "HeldForPolice"
            // The notice stage takes a released case where its classification left it.
            | "PoliceReleased"
            | "Retracted" => Topic::Classifications,
            "NoticeIssued" => Topic::Notices,
            "DispatchStarted"
            | "NoticeDelivered"
            | "DispatchFailed"
            | "DispatchAbandoned"
            | "DispatchDeferred"
            | "PlatformRejected"
            | "WithdrawalStarted"
            | "NoticeWithdrawn"
            | "WithdrawalFailed"
            | "ChaseStarted"
            | "ReminderSent"
            | "ChaseFailed"
            | "ForwardStarted"
            | "ForwardSent"
            | "ForwardFailed"
            | "ReferralStarted"
            | "ReferredToPolice"
            | "ReferralFailed" => Topic::Dispatches,
            "ReceiptAcknowledged"
            | "PlatformDecided"
            | "DeadlineSet"
            | "ChaseRequested"
            | "Escalated"
            | "StillOnline"
            | "RemovalVerified"
            | "StillRemoved"
            | "RejectionAssessed"
            | "RegulatorDecided"
            | "ForwardConfirmed"
            | "PoliceHoldExtended"
            | "PoliceHoldLapsed"
            | "PoliceChecksAllowed"
            | "HeldLocationChecked"
            | "CaseClosed" => Topic::Followups,
            _ => return None,
        })
    }
}

/// What a stage waits for: the events it acts on. Its topics follow from them, and the
/// stage loop hands it nothing else.
#[derive(Debug, Clone, Copy)]
pub enum WaitsFor {
    /// These event types, as [`CaseEvent::type_name`] names them.
    Events(&'static [&'static str]),
    /// Every event (the projection).
    Everything,
}

impl WaitsFor {
    pub fn includes(self, type_name: &str) -> bool {
        match self {
            WaitsFor::Events(names) => names.contains(&type_name),
            WaitsFor::Everything => true,
        }
    }

    /// The topics carrying these events; a name no event has is a mistake in the stage.
    pub fn topics(self) -> Result<Vec<Topic>, String> {
        let WaitsFor::Events(names) = self else {
            return Ok(Topic::EVENTS.to_vec());
        };
        let mut topics = Vec::new();
        for name in names {
            let topic = Topic::for_type(name).ok_or_else(|| format!("no event is called {name:?}"))?;
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        Ok(topics)
    }
}

/// Topic names as the broker knows them: a deployment (or a test) prefixes every name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl TopicNames {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn of(&self, topic: Topic) -> String {
        self.qualify(topic.name())
    }

    pub fn qualify(&self, logical: &str) -> String {
        format!("{}{}", self.prefix, logical)
    }

    pub fn all(&self) -> Vec<String> {
        Topic::ALL.iter().map(|t| self.of(*t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event type the domain defines, from the schema of its tagged union.
    fn every_event_type() -> Vec<String> {
        fn collect(value: &serde_json::Value, names: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(object) => {
                    if let Some(name) = object
                        .get("properties")
                        .and_then(|properties| properties.get("type"))
                        .and_then(|tag| tag.get("const"))
                        .and_then(|name| name.as_str())
                    {
                        names.push(name.to_owned());
                    }
                    object.values().for_each(|child| collect(child, names));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|child| collect(child, names)),
                _ => {}
            }
        }
        let schema = schemars::schema_for!(CaseEvent);
        let mut names = Vec::new();
        collect(schema.as_value(), &mut names);
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_event_type_travels_on_a_topic() {
        let names = every_event_type();
        assert!(names.len() > 40, "{names:?}");
        for name in &names {
            assert!(Topic::for_type(name).is_some(), "{name} has no topic");
        }
    }

    #[test]
    fn a_stage_is_subscribed_to_the_topics_of_its_events() {
        let notices = WaitsFor::Events(&["Classified", "PoliceReleased"]);
        assert_eq!(notices.topics(), Ok(vec![Topic::Classifications]));
        assert!(notices.includes("Classified") && !notices.includes("ReviewRequested"));
        assert!(WaitsFor::Events(&["Clasified"]).topics().is_err());
        assert_eq!(WaitsFor::Everything.topics(), Ok(Topic::EVENTS.to_vec()));
    }
}
