//! The facts tests and benches script cases with through the command path: a partner's
//! report of a hash-listed location, its host, its classification, a platform's decision.

use chrono::{DateTime, TimeDelta, Utc};
use dijkwacht_domain::event::{HostMatch, Location, Reporter};
use dijkwacht_domain::*;

/// `partner-a`'s report of `url` under its reference `reference`, with the demo's listed hash.
pub fn report(reference: &str, url: String) -> ReportReceived {
    ReportReceived {
        report_id: ReportId::new(),
        reporter: Reporter::Partner {
            partner_id: "partner-a".into(),
            partner_reference: reference.into(),
        },
        location: Location {
            url,
            hashes: vec![MediaHash::parse(HashAlgorithm::Sha256, crate::DEMO_SHA256, None).expect("a SHA-256")],
        },
        claimed_class: None,
        reappearance_of: None,
    }
}

/// A Dutch DSA platform that takes notices at `notice_endpoint`.
pub fn host(platform_id: &str, platform_name: &str, notice_endpoint: String) -> HostResolved {
    HostResolved {
        platform_id: PlatformId(platform_id.into()),
        platform_name: platform_name.into(),
        country: "NL".into(),
        dsa_platform: true,
        matched: HostMatch::Domain {
            domain: "127.0.0.1".into(),
        },
        notice_endpoint,
        hosting_provider: None,
    }
}

/// Classified as `class` on a match of the demo hash in the national list.
pub fn hash_listed(class: ContentClass, at: DateTime<Utc>) -> Classified {
    Classified {
        class,
        legal_ground: class.legal_ground(at.date_naive()),
        evidence: Evidence::HashListMatch {
            list: "national".into(),
            list_version: 1,
            algorithm: HashAlgorithm::Sha256,
            value: crate::DEMO_SHA256.into(),
            distance: None,
        },
        automated: true,
    }
}

/// The classify stage's command: `host` (or none known) and the classification.
pub fn classify(host: Option<HostResolved>, class: ContentClass, at: DateTime<Utc>) -> Command {
    Command::Classify {
        host,
        classification: Some(hash_listed(class, at)),
        forward_to: None,
        police_first: None,
    }
}

pub fn dispatch_policy() -> DispatchPolicy {
    DispatchPolicy {
        max_attempts: 8,
        first_backoff: TimeDelta::seconds(60),
    }
}

/// The platform took the content down, as it reports to the Transparency Database.
pub fn removal_decision(notice_id: NoticeId, platform_event_id: String) -> PlatformDecided {
    PlatformDecided {
        notice_id,
        platform_event_id,
        decided_at: None,
        decision_visibility: vec!["DECISION_VISIBILITY_CONTENT_REMOVED".into()],
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
