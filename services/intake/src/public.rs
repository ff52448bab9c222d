//! The public landing page: one plain HTML form that works without JavaScript and on a
//! phone. Anonymous by default; a receipt with a reference and a PIN lets the reporter, and
//! only the reporter, see what became of the report.

use crate::error::ApiError;
use crate::submission::{Outcome, PublicContact, Submission};
use crate::validate::{normalize_url, ValidItem};
use crate::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use dijkwacht_domain::event::Reporter;
use dijkwacht_domain::{CaseId, CaseStatus, ContentClass, Location};
use minijinja::{context, Environment};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::LazyLock;

const MAX_URLS: usize = 20;
const MAX_DESCRIPTION_CHARS: usize = 5_000;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("../templates/layout.html")),
        ("report_form.html", include_str!("../templates/report_form.html")),
        ("report_thanks.html", include_str!("../templates/report_thanks.html")),
        ("report_status.html", include_str!("../templates/report_status.html")),
    ] {
        env.add_template(name, source).expect("templates parse");
    }
    env
});

fn render(status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    match TEMPLATES.get_template(template).and_then(|t| t.render(context)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => ApiError::Internal(format!("rendering {template}: {error}")).into_response(),
    }
}

#[derive(Serialize)]
struct CategoryOption {
    value: &'static str,
    label: &'static str,
}

/// The short list offered to the public, in plain Dutch and English.
const CATEGORIES: &[(&str, &str, Option<ContentClass>)] = &[
    (
        "csam",
        "Seksueel misbruik van kinderen / Child sexual abuse",
        Some(ContentClass::Csam),
    ),
    (
        "ncii",
        "Naaktbeelden zonder toestemming / Intimate images shared without consent",
        Some(ContentClass::Ncii),
    ),
    (
        "sexual_deepfake",
        "Nep-naaktbeelden (deepfake) / Fake nude images",
        Some(ContentClass::SexualDeepfake),
    ),
    (
        "sextortion",
        "Afpersing met beelden / Sextortion",
        Some(ContentClass::Sextortion),
    ),
    (
        "doxing",
        "Persoonsgegevens gedeeld om te bedreigen / Doxing",
        Some(ContentClass::Doxing),
    ),
    (
        "cyber_harassment",
        "Online intimidatie / Online harassment",
        Some(ContentClass::CyberHarassment),
    ),
    (
        "hate_speech",
        "Haat of oproep tot geweld / Hate or incitement",
        Some(ContentClass::HateSpeech),
    ),
    (
        "terrorist_content",
        "Terrorisme / Terrorist content",
        Some(ContentClass::TerroristContent),
    ),
    ("other", "Iets anders / Something else", None),
];

fn categories() -> Vec<CategoryOption> {
    CATEGORIES
        .iter()
        .map(|(value, label, _)| CategoryOption { value, label })
        .collect()
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PublicForm {
    #[serde(default)]
    pub urls: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub email: String,
    /// Hidden from people; bots fill it in.
    #[serde(default)]
    pub website: String,
}

pub async fn form() -> Response {
    render(
        StatusCode::OK,
        "report_form.html",
        context! { form => PublicForm::default(), errors => BTreeMap::<String, String>::new(), categories => categories() },
    )
}

struct ValidForm {
    items: Vec<ValidItem>,
    free_text: Option<String>,
    email: Option<String>,
}

fn validate(form: &PublicForm) -> Result<ValidForm, BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    for (field, value) in [
        ("urls", &form.urls),
        ("description", &form.description),
        ("email", &form.email),
    ] {
        if value.contains('\0') {
            errors.insert(
                field,
                "Bevat een ongeldig teken. / Contains an invalid character (NUL).".to_owned(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut items: Vec<ValidItem> = Vec::new();
    let class = CATEGORIES
        .iter()
        .find(|(value, _, _)| *value == form.category)
        .map(|c| c.2);
    if class.is_none() {
        errors.insert("category", "Kies een onderwerp. / Choose what it is.".to_owned());
    }
    let lines: Vec<&str> = form.urls.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        errors.insert(
            "urls",
            "Vul minstens één adres in. / Enter at least one web address.".to_owned(),
        );
    } else if lines.len() > MAX_URLS {
        errors.insert(
            "urls",
            format!("Hoogstens {MAX_URLS} adressen. / At most {MAX_URLS} addresses."),
        );
    }
    for (number, line) in lines.iter().take(MAX_URLS).enumerate() {
        match normalize_url(line) {
            Ok(url) if items.iter().any(|i| i.location.url == url) => {}
            Ok(url) => items.push(ValidItem {
                location: Location { url, hashes: vec![] },
                claimed_class: class.flatten(),
            }),
            Err(message) => {
                errors.insert("urls", format!("Regel {} / line {}: {message}", number + 1, number + 1));
            }
        }
    }
    if form.description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.insert(
            "description",
            format!("Hoogstens {MAX_DESCRIPTION_CHARS} tekens. / At most {MAX_DESCRIPTION_CHARS} characters."),
        );
    }
    let email = form.email.trim();
    let plausible_email = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
    if !email.is_empty() && !plausible_email {
        errors.insert(
            "email",
            "Dit lijkt geen e-mailadres. / This does not look like an e-mail address.".to_owned(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    Ok(ValidForm {
        items,
        free_text: optional(&form.description),
        email: optional(email),
    })
}

/// A reference that is easy to read out: no 0/O or 1/I.
fn new_reference() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let code: String = bytes[..8]
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("M-{}-{}", &code[..4], &code[4..])
}

fn new_pin() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 1_000_000;
    format!("{n:06}")
}

/// What could not be read as a form is answered like a form with a problem.
fn unreadable(rejection: FormRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response();
    }
    let errors = BTreeMap::from([(
        "form",
        format!("Het formulier kon niet worden gelezen. / The form could not be read: {rejection}"),
    )]);
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        "report_form.html",
        context! { form => PublicForm::default(), errors => errors, categories => categories() },
    )
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    form: Result<Form<PublicForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return unreadable(rejection),
    };
    if !form.website.is_empty() {
        // A bot: thank it, keep nothing.
        return render(StatusCode::OK, "report_thanks.html", context! {});
    }
    if let Err(limited) = state.limits.check_public(client.ip()) {
        return limited.into_response();
    }
    let valid = match validate(&form) {
        Ok(valid) => valid,
        Err(errors) => {
            return render(
                StatusCode::UNPROCESSABLE_ENTITY,
                "report_form.html",
                context! { form => form, errors => errors, categories => categories() },
            )
        }
    };
    let reference = new_reference();
    let pin = new_pin();
    let salt = SaltString::from_b64(&uuid::Uuid::new_v4().simple().to_string()).expect("hex is valid base64 salt");
    let pin_hash = match Argon2::default().hash_password(pin.as_bytes(), &salt) {
        Ok(hash) => hash.to_string(),
        Err(error) => return ApiError::Internal(error.to_string()).into_response(),
    };
    let submission = Submission {
        reporter: Reporter::Public {
            public_reference: reference.clone(),
        },
        body_sha256: Sha256::digest(reference.as_bytes()).into(),
        items: valid.items,
        public_contact: Some(PublicContact {
            public_reference: reference.clone(),
            pin_hash,
            free_text: valid.free_text,
            email: valid.email,
        }),
        trace: dijkwacht_runtime::telemetry::TraceParent::current(),
    };
    match state.together.submit(submission).await {
        Ok(Outcome::Accepted(_)) => render(
            StatusCode::OK,
            "report_thanks.html",
            context! { reference => reference, pin => pin },
        ),
        Ok(_) => ApiError::Internal("a public report was not accepted".into()).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub pin: String,
}

pub async fn status_page(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return render(StatusCode::OK, "report_status.html", context! { reference => "" });
    };
    if query.reference.is_empty() && query.pin.is_empty() {
        return render(StatusCode::OK, "report_status.html", context! { reference => "" });
    }
    show_status(&state, client, query).await
}

pub async fn status_form(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    form: Result<Form<StatusQuery>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(query)) => show_status(&state, client, query).await,
        Err(_) => render(
            StatusCode::NOT_FOUND,
            "report_status.html",
            context! { reference => "", error => "Referentie of PIN klopt niet. / Reference or PIN is wrong." },
        ),
    }
}

fn plain_status(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::New
        | CaseStatus::Received
        | CaseStatus::AwaitingReview
        | CaseStatus::Classified
        | CaseStatus::HeldForPolice => "in behandeling / being assessed",
        CaseStatus::NoticeIssued
        | CaseStatus::NoticeDelivered
        | CaseStatus::DispatchFailed
        | CaseStatus::Rejected
        | CaseStatus::Escalated => "verwijderverzoek verstuurd / removal requested",
        CaseStatus::Removed => "verwijderd / removed",
        CaseStatus::Forwarded => {
            "doorgestuurd naar het meldpunt in het land van de host / passed to the hotline of the hosting country"
        }
        CaseStatus::Closed | CaseStatus::Retracted => "afgehandeld / dealt with",
    }
}

async fn show_status(state: &AppState, client: SocketAddr, query: StatusQuery) -> Response {
    // Every attempt counts against the address's limit: a PIN cannot be guessed quickly.
    if let Err(limited) = state.limits.check_public(client.ip()) {
        return limited.into_response();
    }
    let unknown = || {
        render(
            StatusCode::NOT_FOUND,
            "report_status.html",
            context! { reference => query.reference.clone(), error => "Referentie of PIN klopt niet. / Reference or PIN is wrong." },
        )
    };
    if query.reference.contains('\0') {
        return unknown();
    }
    let row = sqlx::query(
        "SELECT p.pin_hash, r.cases FROM public_reporters p JOIN reports r USING (report_id) WHERE p.public_reference = $1",
    )
    .bind(query.reference.trim())
    .fetch_optional(state.store.pool())
    .await;
    let row = match row {
        Ok(Some(row)) => row,
        Ok(None) => return unknown(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    let pin_hash: String = row.get("pin_hash");
    let verified = PasswordHash::new(&pin_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(query.pin.trim().as_bytes(), &hash)
            .is_ok()
    });
    if !verified {
        return unknown();
    }
    let cases: Vec<crate::api::CaseRef> = serde_json::from_value(row.get("cases")).unwrap_or_default();
    let ids: Vec<CaseId> = cases.iter().map(|c| c.case_id).collect();
    let loaded = match state.store.load(&ids).await {
        Ok(loaded) => loaded,
        Err(error) => return ApiError::from(error).into_response(),
    };
    #[derive(Serialize)]
    struct Shown {
        url: String,
        status: &'static str,
    }
    let shown: Vec<Shown> = cases
        .into_iter()
        .map(|c| Shown {
            status: plain_status(
                loaded
                    .cases
                    .get(&c.case_id)
                    .map_or(CaseStatus::Received, |l| l.case.status),
            ),
            url: c.url,
        })
        .collect();
    render(
        StatusCode::OK,
        "report_status.html",
        context! { reference => query.reference.trim(), cases => shown },
    )
}
