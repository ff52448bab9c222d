//! The words of notices: every language renders, and no message lacking an Art. 16(2)
//! element gets past the check, whoever wrote its template.

use chrono::{TimeZone, Utc};
use dijkwacht_dispatch::render::{Element, RenderError, Subject, Templates, LANGUAGES};
use dijkwacht_domain::event::{HostMatch, Location, Reporter};
use dijkwacht_domain::*;

fn notice(class: ContentClass, evidence: Evidence) -> Notice {
    let at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
    let mut case = Case::new(CaseId(uuid::Uuid::from_u128(1)));
    let events = [
        CaseEvent::ReportReceived(ReportReceived {
            report_id: ReportId(uuid::Uuid::from_u128(2)),
            reporter: Reporter::Public {
                public_reference: "M-1".into(),
            },
            location: Location {
                url: "https://videos.example/v/1?a=b&c=d".into(),
                hashes: vec![],
            },
            claimed_class: None,
            reappearance_of: None,
        }),
        CaseEvent::HostResolved(HostResolved {
            platform_id: "videos".into(),
            platform_name: "Videos".into(),
            country: "NL".into(),
            dsa_platform: true,
            matched: HostMatch::Domain {
                domain: "videos.example".into(),
            },
            notice_endpoint: String::new(),
            hosting_provider: None,
        }),
        CaseEvent::Classified(Classified {
            class,
            legal_ground: class.legal_ground(at.date_naive()),
            evidence,
            automated: true,
        }),
    ];
    for event in &events {
        case.apply(event, at);
    }
    let policy = NoticePolicy {
        organisation: "Expertisecentrum & Co".into(),
        contact_email: "notices@example.org".into(),
        designated_by: "ACM".into(),
        designation_reference: "TF-NL-0001".into(),
    };
    let decided = case
        .decide(
            Command::IssueNotice {
                notice_id: NoticeId(uuid::Uuid::from_u128(3)),
                policy,
            },
            at,
        )
        .unwrap();
    let [CaseEvent::NoticeIssued(issued)] = &decided[..] else {
        panic!("{decided:?}")
    };
    (*issued.notice).clone()
}

fn hash_match() -> Evidence {
    Evidence::HashListMatch {
        list: "national".into(),
        list_version: 4,
        algorithm: HashAlgorithm::Pdq,
        value: "ab".repeat(32),
        distance: Some(12),
    }
}

fn subject<'a>(notices: &'a [&'a Notice]) -> Subject<'a> {
    Subject {
        notices,
        platform_name: "Videos",
    }
}

#[test]
fn the_four_languages_render_complete_messages_in_their_own_words() {
    let templates = Templates::built_in().unwrap();
    let notice = notice(ContentClass::Ncii, hash_match());
    let greetings = [
        ("en", "Dear Videos team"),
        ("nl", "Geacht team van Videos"),
        ("de", "Sehr geehrtes Team von Videos"),
        ("fr", "équipe de Videos"),
    ];
    for (language, greeting) in greetings {
        let rendered = templates.render(subject(&[&notice]), "email", language, None).unwrap();
        assert_eq!(rendered.language, language);
        assert!(rendered.text.contains(greeting), "{language}: {}", rendered.text);
        assert!(
            rendered.subject.contains("00000000-0000-0000-0000-000000000003"),
            "{}",
            rendered.subject
        );
        // Honest evidence, in every language: the list, its version and the distance.
        assert!(
            rendered.text.contains("national") && rendered.text.contains("12"),
            "{}",
            rendered.text
        );
        let html = rendered.html.expect("an e-mail has an HTML alternative");
        assert!(html.contains("&amp;c=d"), "the HTML is escaped: {html}");
        let api = templates.render(subject(&[&notice]), "api", language, None).unwrap();
        assert_eq!(api.text, rendered.text, "every channel carries the same text");
        assert_eq!(api.html, None, "only e-mail carries HTML");
    }
    assert_eq!(LANGUAGES.len(), greetings.len());
    let unknown = templates.render(subject(&[&notice]), "email", "xx", None).unwrap();
    assert_eq!(unknown.language, "en", "an unknown language falls back to English");
}

#[test]
fn a_notice_classified_by_a_rule_never_claims_a_hash_match() {
    let templates = Templates::built_in().unwrap();
    let notice = notice(
        ContentClass::Doxing,
        Evidence::UrlRule {
            rule_id: "doxing-board".into(),
        },
    );
    for language in LANGUAGES {
        let rendered = templates.render(subject(&[&notice]), "email", language, None).unwrap();
        assert!(rendered.text.contains("doxing-board"), "{}", rendered.text);
        assert!(
            !rendered.text.to_lowercase().contains("hash"),
            "{language}: {}",
            rendered.text
        );
    }
}

#[test]
fn a_template_that_drops_an_element_is_refused_before_anything_is_sent() {
    let templates = Templates::built_in().unwrap();
    let notice = notice(ContentClass::Ncii, hash_match());
    let dir = std::env::temp_dir().join(format!("dijkwacht-templates-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("email")).unwrap();
    // A platform's own text that forgets the explanation and the good-faith statement.
    std::fs::write(
        dir.join("email").join("text.j2"),
        "{{ trusted_flagger }}\n{% for l in locations %}{{ l.url }}\n{% endfor %}{{ notifier.name }} {{ notifier.email }}\n",
    )
    .unwrap();
    let refused = templates
        .render(subject(&[&notice]), "email", "en", Some(&dir))
        .unwrap_err();
    let RenderError::Incomplete { missing, template, .. } = &refused else {
        panic!("{refused}")
    };
    assert_eq!(missing, &[Element::Explanation, Element::GoodFaith]);
    assert!(template.ends_with("text.j2"), "{template}");
    assert!(refused.to_string().contains("Art. 16(2)(a)"), "{refused}");
    // The same override leaves other channels alone.
    assert!(templates.render(subject(&[&notice]), "api", "en", Some(&dir)).is_ok());
}

#[test]
fn the_notifier_is_required_except_for_child_sexual_abuse_material() {
    let templates = Templates::built_in().unwrap();
    let dir = std::env::temp_dir().join(format!("dijkwacht-templates-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("text.j2"),
        "{{ trusted_flagger }}\n{% for e in explanations %}{{ e }}\n{% endfor %}{% for l in locations %}{{ l.url }}\n{% endfor %}{{ good_faith }}\n",
    )
    .unwrap();
    let csam = notice(ContentClass::Csam, hash_match());
    assert!(templates.render(subject(&[&csam]), "email", "nl", Some(&dir)).is_ok());
    let ncii = notice(ContentClass::Ncii, hash_match());
    let refused = templates
        .render(subject(&[&ncii]), "email", "nl", Some(&dir))
        .unwrap_err();
    assert!(matches!(refused, RenderError::Incomplete { missing, .. } if missing == [Element::Notifier]));
}
