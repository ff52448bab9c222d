//! The words of a notice: minijinja templates per channel, the phrases of each language,
//! and the check that a rendered message still carries every DSA Art. 16(2) element.
//!
//! The phrases that make up an element (the explanation, the good-faith statement, the
//! trusted-flagger marking) are rendered here, outside the message template; the template
//! places them. So the check can ask of any template, built in or a platform's own, whether
//! each element's words reached the message, and a template that drops one is caught before
//! anything is sent.

use chrono::{DateTime, Utc};
use dijkwacht_domain::notice::{describe, Illegality};
use dijkwacht_domain::{Evidence, Notice};
use minijinja::{context, AutoEscape, Environment, HtmlEscape, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, RwLock};

/// The languages with built-in phrases; a platform's language outside them gets English.
pub const LANGUAGES: [&str; 4] = ["en", "nl", "de", "fr"];
const FALLBACK_LANGUAGE: &str = "en";
/// The channel that carries a message's HTML alternative (`Channel::kind`).
const EMAIL: &str = "email";

const BUILT_IN_TEMPLATES: [(&str, &str); 3] = [
    ("subject.j2", include_str!("../templates/subject.j2")),
    ("text.j2", include_str!("../templates/text.j2")),
    ("html.j2", include_str!("../templates/html.j2")),
];

const BUILT_IN_PHRASES: [(&str, &str); 4] = [
    ("en", include_str!("../templates/phrases/en.toml")),
    ("nl", include_str!("../templates/phrases/nl.toml")),
    ("de", include_str!("../templates/phrases/de.toml")),
    ("fr", include_str!("../templates/phrases/fr.toml")),
];

/// The sentences of one language. Every field is required, so a language file that misses
/// one fails at start, not in a notice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phrases {
    pub subject: String,
    pub greeting: String,
    pub intro: String,
    pub trusted_flagger: String,
    pub heading_locations: String,
    pub heading_explanation: String,
    pub heading_notifier: String,
    pub heading_statement: String,
    pub hashes: String,
    pub no_notifier: String,
    pub explanation_illegal: String,
    pub explanation_terms: String,
    pub basis_hash_exact: String,
    pub basis_hash_near: String,
    pub basis_url_rule: String,
    pub basis_prior: String,
    pub basis_reappearance: String,
    pub basis_partner: String,
    pub basis_analysts: String,
    pub good_faith: String,
    pub requested_action: String,
    pub attachment_note: String,
    pub withdrawal_subject: String,
    pub withdrawal_text: String,
    pub reminder_subject: String,
    pub reminder_text: String,
    pub escalation_subject: String,
    pub escalation_text: String,
    /// Content class (its API name) → how the language describes it.
    pub classes: BTreeMap<String, String>,
}

/// An Art. 16(2) element, or the Art. 22 marking, as the check names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Element {
    /// (a) the substantiated explanation.
    Explanation,
    /// (b) the exact locations.
    Locations,
    /// (c) the notifier's name and e-mail (not for child sexual abuse material).
    Notifier,
    /// (d) the good-faith statement.
    GoodFaith,
    /// Art. 22: that the notice comes from a trusted flagger.
    TrustedFlaggerMarking,
}

impl Element {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Explanation => "the explanation (Art. 16(2)(a))",
            Self::Locations => "the exact locations (Art. 16(2)(b))",
            Self::Notifier => "the notifier's name and e-mail (Art. 16(2)(c))",
            Self::GoodFaith => "the good-faith statement (Art. 16(2)(d))",
            Self::TrustedFlaggerMarking => "the trusted-flagger marking (Art. 22)",
        }
    }
}

/// A message ready to leave: a subject, a plain-text body and, for e-mail, its HTML
/// alternative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub language: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The message would lack elements: it is never sent.
    #[error("the {language} message from {template} lacks {}", describe_all(.missing))]
    Incomplete {
        language: String,
        template: String,
        missing: Vec<Element>,
    },
    #[error("template {template}: {source}")]
    Template {
        template: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("phrases for {language}: {message}")]
    Phrases { language: String, message: String },
}

fn describe_all(missing: &[Element]) -> String {
    missing
        .iter()
        .map(|element| element.describe())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a message is about: one notice, or several to one platform under one legal regime.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub notices: &'a [&'a Notice],
    pub platform_name: &'a str,
}

/// The built-in templates and phrases, and where a platform keeps its own.
#[derive(Debug, Clone)]
pub struct Templates {
    phrases: BTreeMap<String, Phrases>,
    /// The built-in message templates, parsed once.
    built_in: Arc<Environment<'static>>,
}

impl Templates {
    pub fn built_in() -> Result<Self, RenderError> {
        let mut phrases = BTreeMap::new();
        for (language, text) in BUILT_IN_PHRASES {
            let parsed: Phrases = toml::from_str(text).map_err(|error| RenderError::Phrases {
                language: language.to_owned(),
                message: error.to_string(),
            })?;
            if let Some(class) = dijkwacht_domain::ContentClass::ALL
                .iter()
                .find(|class| !parsed.classes.contains_key(class.as_str()))
            {
                return Err(RenderError::Phrases {
                    language: language.to_owned(),
                    message: format!("no wording for class {}", class.as_str()),
                });
            }
            phrases.insert(language.to_owned(), parsed);
        }
        let mut built_in = message_environment();
        for (name, source) in BUILT_IN_TEMPLATES {
            built_in
                .add_template(name, source)
                .map_err(|source| RenderError::Template {
                    template: format!("built-in {name}"),
                    source,
                })?;
        }
        Ok(Self {
            phrases,
            built_in: Arc::new(built_in),
        })
    }

    /// Renders the message in `language` with the platform's own templates from
    /// `overrides` where it has them (`{channel}/{language}/NAME`, `{channel}/NAME`, `NAME`
    /// for NAME in `subject.j2`, `text.j2`, `html.j2`), and checks it is complete. Only
    /// e-mail carries the HTML alternative; no other channel pays for rendering it.
    pub fn render(
        &self,
        subject: Subject<'_>,
        channel: &str,
        language: &str,
        overrides: Option<&Path>,
    ) -> Result<Rendered, RenderError> {
        let (language, phrases) = match self.phrases.get_key_value(language) {
            Some((language, phrases)) => (language.as_str(), phrases),
            None => (FALLBACK_LANGUAGE, &self.phrases[FALLBACK_LANGUAGE]),
        };
        let elements = Elements::compose(subject, phrases)?;
        let overridden: Vec<(&str, PathBuf)> = BUILT_IN_TEMPLATES
            .iter()
            .filter_map(|(name, _)| {
                Some((
                    *name,
                    overrides.and_then(|dir| find_override(dir, channel, language, name))?,
                ))
            })
            .collect();
        let mut sources: BTreeMap<&str, String> = BUILT_IN_TEMPLATES
            .iter()
            .map(|(name, _)| (*name, format!("built-in {name}")))
            .collect();
        // The built-in templates are parsed once; a platform's own are read for each message,
        // so an edit takes effect without a restart.
        let own_env;
        let env = if overridden.is_empty() {
            &self.built_in
        } else {
            let mut env = message_environment();
            for (name, built_in) in BUILT_IN_TEMPLATES {
                let (origin, source) = match overridden.iter().find(|(overridden, _)| *overridden == name) {
                    Some((_, path)) => {
                        let source = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
                            path: path.display().to_string(),
                            source,
                        })?;
                        (path.display().to_string(), source)
                    }
                    None => (format!("built-in {name}"), built_in.to_owned()),
                };
                env.add_template_owned(name, source)
                    .map_err(|source| RenderError::Template {
                        template: origin.clone(),
                        source,
                    })?;
                sources.insert(name, origin);
            }
            own_env = env;
            &own_env
        };
        let render = |name: &'static str, subject_line: &str| {
            env.get_template(name)
                .and_then(|template| template.render(elements.context(language, subject_line)))
                .map_err(|source| RenderError::Template {
                    template: sources[name].clone(),
                    source,
                })
        };
        let subject_line = render("subject.j2", "")?.trim().to_owned();
        let text = render("text.j2", &subject_line)?;
        let html = (channel == EMAIL)
            .then(|| render("html.j2", &subject_line))
            .transpose()?;
        let mut bodies = vec![("text.j2", &text, false)];
        if let Some(html) = &html {
            bodies.push(("html.j2", html, true));
        }
        for (name, body, escape) in bodies {
            let missing = elements.missing_from(body, escape);
            if !missing.is_empty() {
                return Err(RenderError::Incomplete {
                    language: language.to_owned(),
                    template: sources[name].clone(),
                    missing,
                });
            }
        }
        Ok(Rendered {
            language: language.to_owned(),
            subject: subject_line,
            text,
            html,
        })
    }
}

/// What a message about a notice already sent is: its withdrawal, a reminder, or the
/// escalation to the hosting provider behind the platform.
#[derive(Debug, Clone, Copy)]
pub enum FollowUp<'a> {
    Withdrawal { reason: &'a str },
    Reminder { number: u32 },
    Escalation { platform: &'a str },
}

/// When the notice was delivered and by when the platform had to act.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoticeTimes {
    pub delivered_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
}

impl Templates {
    /// A message about `notice` in `language`: it names the notice, its date and its
    /// locations, and says what it is about.
    pub fn render_follow_up(
        &self,
        notice: &Notice,
        follow_up: FollowUp<'_>,
        times: NoticeTimes,
        language: &str,
    ) -> Result<Rendered, RenderError> {
        let (language, phrases) = match self.phrases.get_key_value(language) {
            Some((language, phrases)) => (language.as_str(), phrases),
            None => (FALLBACK_LANGUAGE, &self.phrases[FALLBACK_LANGUAGE]),
        };
        let urls: Vec<&str> = notice.locations.iter().map(|l| l.url.as_str()).collect();
        let what = phrases
            .classes
            .get(notice.content_class.as_str())
            .map_or_else(|| describe(notice.content_class).to_owned(), Clone::clone);
        let (subject, text, reason, number, platform) = match follow_up {
            FollowUp::Withdrawal { reason } => (&phrases.withdrawal_subject, &phrases.withdrawal_text, reason, 0, ""),
            FollowUp::Reminder { number } => (&phrases.reminder_subject, &phrases.reminder_text, "", number, ""),
            FollowUp::Escalation { platform } => {
                (&phrases.escalation_subject, &phrases.escalation_text, "", 0, platform)
            }
        };
        let vars = context! {
            notice_id => notice.notice_id.to_string(),
            issued_on => day(Some(notice.issued_at)),
            delivered_on => day(times.delivered_at),
            due_on => day(times.due_at),
            urls => urls.join(", "),
            what,
            reason,
            number,
            platform,
        };
        let text = fill(text, &vars)?;
        Ok(Rendered {
            language: language.to_owned(),
            subject: fill(subject, &vars)?,
            html: Some(format!(
                "<!DOCTYPE html>\n<html lang=\"{language}\"><body><p>{}</p></body></html>\n",
                HtmlEscape(&text)
            )),
            text: format!("{text}\n\n-- \n{}\n", notice.trusted_flagger.organisation),
        })
    }
}

fn find_override(dir: &Path, channel: &str, language: &str, name: &str) -> Option<PathBuf> {
    [
        dir.join(channel).join(language).join(name),
        dir.join(channel).join(name),
        dir.join(name),
    ]
    .into_iter()
    .find(|path| path.is_file())
}

/// The words of each element for one message, rendered from the language's phrases.
struct Elements<'a> {
    subject: Subject<'a>,
    phrases: BTreeMap<&'static str, String>,
    explanations: Vec<String>,
    trusted_flagger: String,
    good_faith: String,
    requested_action: String,
}

fn day(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string())
}

impl<'a> Elements<'a> {
    fn compose(subject: Subject<'a>, phrases: &Phrases) -> Result<Self, RenderError> {
        let first = subject.notices.first().ok_or_else(|| RenderError::Phrases {
            language: String::new(),
            message: "a message needs at least one notice".into(),
        })?;
        let what = phrases.classes[first.content_class.as_str()].clone();
        let marking = &first.trusted_flagger;
        let notice_ids: Vec<String> = subject.notices.iter().map(|n| n.notice_id.to_string()).collect();
        let vars = context! {
            notice_id => notice_ids.join(", "),
            what => what,
            platform => subject.platform_name,
            organisation => marking.organisation,
            designated_by => marking.designated_by,
            designation_reference => marking.designation_reference,
        };
        let fill = |template: &str| fill(template, &vars);
        let mut rendered = BTreeMap::new();
        for (name, template) in [
            ("subject", &phrases.subject),
            ("greeting", &phrases.greeting),
            ("intro", &phrases.intro),
            ("heading_locations", &phrases.heading_locations),
            ("heading_explanation", &phrases.heading_explanation),
            ("heading_notifier", &phrases.heading_notifier),
            ("heading_statement", &phrases.heading_statement),
            ("hashes", &phrases.hashes),
            ("no_notifier", &phrases.no_notifier),
            ("attachment_note", &phrases.attachment_note),
        ] {
            rendered.insert(name, fill(template)?);
        }
        let explanations = subject
            .notices
            .iter()
            .map(|notice| explain(notice, subject.platform_name, phrases))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            subject,
            trusted_flagger: fill(&phrases.trusted_flagger)?,
            good_faith: fill(&phrases.good_faith)?,
            requested_action: fill(&phrases.requested_action)?,
            phrases: rendered,
            explanations,
        })
    }

    fn context(&self, language: &str, subject_line: &str) -> Value {
        let first = self.subject.notices[0];
        let locations: Vec<_> = self.subject.notices.iter().flat_map(|n| n.locations.iter()).collect();
        context! {
            language => language,
            subject => subject_line,
            phrases => self.phrases,
            trusted_flagger => self.trusted_flagger,
            locations => locations,
            explanations => self.explanations,
            notifier => first.notifier,
            good_faith => self.good_faith,
            requested_action => self.requested_action,
            organisation => first.trusted_flagger.organisation,
            notice_ids => self.subject.notices.iter().map(|n| n.notice_id.to_string()).collect::<Vec<_>>().join(", "),
        }
    }

    /// The elements whose words do not appear in `body` (HTML-escaped first for HTML).
    fn missing_from(&self, body: &str, escape: bool) -> Vec<Element> {
        let shown = |words: &str| {
            if escape {
                body.contains(&HtmlEscape(words).to_string())
            } else {
                body.contains(words)
            }
        };
        let first = self.subject.notices[0];
        let mut missing = Vec::new();
        if !self.explanations.iter().all(|explanation| shown(explanation)) {
            missing.push(Element::Explanation);
        }
        let urls = self.subject.notices.iter().flat_map(|n| n.locations.iter());
        if !urls.clone().all(|location| shown(&location.url)) || urls.count() == 0 {
            missing.push(Element::Locations);
        }
        if let Some(notifier) = &first.notifier {
            if !shown(&notifier.name) || !shown(&notifier.email) {
                missing.push(Element::Notifier);
            }
        }
        if !shown(&self.good_faith) {
            missing.push(Element::GoodFaith);
        }
        if !shown(&self.trusted_flagger) {
            missing.push(Element::TrustedFlaggerMarking);
        }
        missing
    }
}

/// An environment for the message templates: HTML escaped in `*html.j2`, nothing else.
fn message_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with("html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// Renders one phrase (a template of a sentence) with `vars`. Each phrase is compiled once,
/// under its own text as its name: there are a few dozen per language, and compiling them
/// for every notice cost more than filling them.
fn fill(template: &str, vars: &Value) -> Result<String, RenderError> {
    static PHRASES: LazyLock<RwLock<Environment<'static>>> = LazyLock::new(|| {
        let mut env = Environment::new();
        // Named by their text, which may end like a file name: never escape by the name.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        RwLock::new(env)
    });
    let failed = |source| RenderError::Template {
        template: format!("phrase {template:?}"),
        source,
    };
    {
        let phrases = PHRASES.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Ok(compiled) = phrases.get_template(template) {
            return compiled.render(vars).map_err(failed);
        }
    }
    let mut phrases = PHRASES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    phrases
        .add_template_owned(template.to_owned(), template.to_owned())
        .map_err(failed)?;
    phrases
        .get_template(template)
        .and_then(|compiled| compiled.render(vars))
        .map_err(failed)
}

/// The explanation of one notice in the language: what the content is, what the assessment
/// rests on (only what was recorded), and the legal ground or the platform's terms.
fn explain(notice: &Notice, platform: &str, phrases: &Phrases) -> Result<String, RenderError> {
    let basis = match &notice.evidence {
        Some(Evidence::HashListMatch {
            list,
            list_version,
            algorithm,
            distance,
            ..
        }) => {
            let vars = context! { list, version => list_version, algorithm => algorithm.as_str(), distance };
            match distance {
                Some(_) => fill(&phrases.basis_hash_near, &vars)?,
                None => fill(&phrases.basis_hash_exact, &vars)?,
            }
        }
        Some(Evidence::UrlRule { rule_id }) => fill(&phrases.basis_url_rule, &context! { rule => rule_id })?,
        Some(Evidence::PriorDecision { case_id }) => {
            fill(&phrases.basis_prior, &context! { case => case_id.to_string() })?
        }
        Some(Evidence::Reappearance { case_id }) => {
            fill(&phrases.basis_reappearance, &context! { case => case_id.to_string() })?
        }
        Some(Evidence::TrustedClaim { partner_id }) => {
            fill(&phrases.basis_partner, &context! { partner => partner_id.to_string() })?
        }
        Some(Evidence::AnalystReview { analysts }) => fill(
            &phrases.basis_analysts,
            &context! { count => analysts.len().max(1), assessment => notice.assessment.clone().unwrap_or_default() },
        )?,
        // A notice from before notices named their evidence: its own English explanation.
        None => return Ok(notice.explanation.clone()),
    };
    let url = notice.locations.first().map(|l| l.url.as_str()).unwrap_or_default();
    let vars = context! {
        url,
        platform,
        what => phrases.classes.get(notice.content_class.as_str()).cloned().unwrap_or_else(|| describe(notice.content_class).to_owned()),
        reported_on => day(notice.reported_at),
        assessed_on => day(notice.assessed_at),
        basis,
    };
    match &notice.illegality {
        Illegality::Illegal { legal_ground } => fill(
            &phrases.explanation_illegal,
            &context! { provision => legal_ground.provision, jurisdiction => legal_ground.jurisdiction, ..vars },
        ),
        Illegality::IncompatibleWithTerms => fill(&phrases.explanation_terms, &vars),
    }
}
