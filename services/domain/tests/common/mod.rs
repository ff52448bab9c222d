//! Given/when/then for the Case decider: the events of a case at each step of its life.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use dijkwacht_domain::*;

pub fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub struct Scenario {
    pub case: Case,
}

pub fn given(events: &[CaseEvent]) -> Scenario {
    let case = Case::from_events(CaseId(uuid::Uuid::nil()), events.iter().map(|e| (e, t(0))));
    Scenario { case }
}

impl Scenario {
    pub fn when(&self, command: Command, now: DateTime<Utc>) -> Result<Vec<CaseEvent>, Refusal> {
        self.case.decide(command, now)
    }
}

pub fn sha256() -> MediaHash {
    MediaHash::parse(HashAlgorithm::Sha256, &"ab".repeat(32), None).unwrap()
}

pub fn report_received() -> CaseEvent {
    CaseEvent::ReportReceived(ReportReceived {
        report_id: ReportId(uuid::Uuid::nil()),
        reporter: Reporter::Partner {
            partner_id: "hotline-be".into(),
            partner_reference: "BE-2026-0001".into(),
        },
        location: Location {
            url: "https://videos.example/v/123".into(),
            hashes: vec![sha256()],
        },
        claimed_class: Some(ContentClass::Csam),
        reappearance_of: None,
    })
}

pub fn host() -> HostResolved {
    HostResolved {
        platform_id: "videos-example".into(),
        platform_name: "Videos Example".into(),
        country: "NL".into(),
        dsa_platform: true,
        matched: HostMatch::Domain {
            domain: "videos.example".into(),
        },
        notice_endpoint: "https://videos.example/dsa/notices".into(),
        hosting_provider: None,
    }
}

pub fn classified(class: ContentClass) -> Classified {
    Classified {
        class,
        legal_ground: class.legal_ground(t(0).date_naive()),
        evidence: Evidence::HashListMatch {
            list: "national".into(),
            list_version: 3,
            algorithm: HashAlgorithm::Sha256,
            value: "ab".repeat(32),
            distance: None,
        },
        automated: true,
    }
}

pub fn policy() -> NoticePolicy {
    NoticePolicy {
        organisation: "Expertisecentrum Online Misbruik".into(),
        contact_email: "notices@example.org".into(),
        designated_by: "ACM".into(),
        designation_reference: "TF-NL-0001".into(),
    }
}

pub fn notice_id() -> NoticeId {
    NoticeId(uuid::Uuid::from_u128(7))
}

pub fn dispatch_policy() -> DispatchPolicy {
    DispatchPolicy {
        max_attempts: 3,
        first_backoff: Duration::minutes(1),
    }
}

pub fn issued(class: ContentClass) -> Vec<CaseEvent> {
    let base = given(&[
        report_received(),
        CaseEvent::HostResolved(host()),
        CaseEvent::Classified(classified(class)),
    ]);
    let mut events = vec![
        report_received(),
        CaseEvent::HostResolved(host()),
        CaseEvent::Classified(classified(class)),
    ];
    events.extend(
        base.when(
            Command::IssueNotice {
                notice_id: notice_id(),
                policy: policy(),
            },
            t(1),
        )
        .unwrap(),
    );
    events
}

pub fn started(attempt: u32) -> CaseEvent {
    CaseEvent::DispatchStarted(DispatchStarted {
        notice_id: notice_id(),
        attempt,
        channel: Channel::Http {
            endpoint: host().notice_endpoint,
        },
    })
}

pub fn delivered() -> Vec<CaseEvent> {
    let mut events = issued(ContentClass::Csam);
    events.push(started(1));
    events.push(CaseEvent::NoticeDelivered(NoticeDelivered {
        notice_id: notice_id(),
        attempt: 1,
        platform_reference: Some("P-1".into()),
        message_id: None,
        submitted_by: None,
    }));
    events
}

/// A platform's decision on `notice_id` with one visibility restriction, on CSAM grounds.
pub fn decided(notice_id: NoticeId, event_id: &str, visibility: &str) -> PlatformDecided {
    PlatformDecided {
        notice_id,
        platform_event_id: event_id.into(),
        decided_at: None,
        decision_visibility: vec![visibility.into()],
        decision_visibility_other: None,
        decision_monetary: None,
        decision_provision: None,
        decision_account: None,
        decision_ground: "DECISION_GROUND_ILLEGAL_CONTENT".into(),
        category: "STATEMENT_CATEGORY_PROTECTION_OF_MINORS".into(),
        automated_decision: "AUTOMATED_DECISION_NOT_AUTOMATED".into(),
        statement_of_reasons_id: None,
    }
}
