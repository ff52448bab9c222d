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
        match event {
            CaseEvent::ReportReceived(_) | CaseEvent::ReportedAgain(_) | CaseEvent::Reappeared(_) => Topic::Reports,
            CaseEvent::HostResolved(_)
            | CaseEvent::Classified(_)
            | CaseEvent::ReviewRequested(_)
            | CaseEvent::ReviewClaimed(_)
            | CaseEvent::AnalystDecided(_)
            | CaseEvent::ForwardedToHotline(_)
            | CaseEvent::HeldForPolice(_)
            // The notice stage takes a released case where its classification left it.
            | CaseEvent::PoliceReleased(_)
            | CaseEvent::Retracted(_) => Topic::Classifications,
            CaseEvent::NoticeIssued(_) => Topic::Notices,
            CaseEvent::DispatchStarted(_)
            | CaseEvent::NoticeDelivered(_)
            | CaseEvent::DispatchFailed(_)
            | CaseEvent::DispatchAbandoned(_)
            | CaseEvent::DispatchDeferred(_)
            | CaseEvent::PlatformRejected(_)
            | CaseEvent::WithdrawalStarted(_)
            | CaseEvent::NoticeWithdrawn(_)
            | CaseEvent::WithdrawalFailed(_)
            | CaseEvent::ChaseStarted(_)
            | CaseEvent::ReminderSent(_)
            | CaseEvent::ChaseFailed(_)
            | CaseEvent::ForwardStarted(_)
            | CaseEvent::ForwardSent(_)
            | CaseEvent::ForwardFailed(_)
            | CaseEvent::ReferralStarted(_)
            | CaseEvent::ReferredToPolice(_)
            | CaseEvent::ReferralFailed(_) => Topic::Dispatches,
            CaseEvent::ReceiptAcknowledged(_)
            | CaseEvent::PlatformDecided(_)
            | CaseEvent::DeadlineSet(_)
            | CaseEvent::ChaseRequested(_)
            | CaseEvent::Escalated(_)
            | CaseEvent::StillOnline(_)
            | CaseEvent::RemovalVerified(_)
            | CaseEvent::StillRemoved(_)
            | CaseEvent::RejectionAssessed(_)
            | CaseEvent::RegulatorDecided(_)
            | CaseEvent::ForwardConfirmed(_)
            | CaseEvent::PoliceHoldExtended(_)
            | CaseEvent::PoliceHoldLapsed(_)
            | CaseEvent::PoliceChecksAllowed(_)
            | CaseEvent::HeldLocationChecked(_)
            | CaseEvent::CaseClosed(_) => Topic::Followups,
        }
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
