//! The Hash Check API: hosting providers check uploads (and what they find on their servers)
//! against the hash lists before it goes online, and refuse a match. It answers from the same
//! versioned lists and matching index as the classify stage, swapped whole when a list
//! changes. It keeps counts per provider and day, and for a match only, a hit record naming
//! the list entry, so a delisting can tell which providers blocked on a false positive.

pub mod answer;
pub mod api;
mod part;
pub mod providers;
pub mod record;
pub mod settings;

pub use crate::part::HashCheck;

use crate::answer::{answer, queries, Answer, Query};
use crate::api::{HashCheckAnswer, HashCheckRequest};
use crate::providers::Providers;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Json;
use dijkwacht_classify::SharedIndex;
use dijkwacht_http::schema::document_order;
use dijkwacht_http::{json_body, ApiError, Caller, DocumentedRouter, Edge, FieldError, Limits};
use dijkwacht_intake::validate::normalize_url;
use dijkwacht_runtime::{EventStore, SharedClock};

/// Hosting providers' keys carry it.
pub const SCOPE_HASH_CHECK: &str = "hash-check";

/// The state of the hash check's routes.
#[derive(Clone)]
pub struct HashCheckApi {
    pub store: EventStore,
    pub clock: SharedClock,
    pub limits: Limits,
    pub index: SharedIndex,
    pub providers: Providers,
    pub max_batch: usize,
}

impl Edge for HashCheckApi {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The hash check's route with its OpenAPI description.
pub fn documented() -> DocumentedRouter<HashCheckApi> {
    DocumentedRouter::new().route("post", "/v1/hash-check", post(check), |op| {
        op.summary("A hosting provider checks up to 10,000 hashes against the hash lists")
            .scope(SCOPE_HASH_CHECK)
            .json_body::<HashCheckRequest>()
            .json_response::<HashCheckAnswer>(
                200,
                "one answer per hash, in order: match (with the class, and for PDQ the distance), \
                 no_match, or not_checked",
            )
            .error(
                413,
                "more hashes than `max_batch` (10,000 unless configured): split the batch",
            )
            .error(422, "a malformed hash, each with the JSON Pointer of the value")
            .error(429, "over the provider's checks per second: retry after `Retry-After`")
    })
}

async fn check(
    State(api): State<HashCheckApi>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<HashCheckAnswer>, ApiError> {
    let principal = caller.require(SCOPE_HASH_CHECK)?;
    let provider = (principal.kind == "hosting_provider")
        .then(|| api.providers.get(&principal.id))
        .flatten()
        .ok_or(ApiError::Forbidden(SCOPE_HASH_CHECK))?;
    let Batch { request, queries, urls } = read_batch(&body, api.max_batch)?;
    provider.pace(queries.len())?;

    let answers: Vec<Answer> = {
        let index = api.index.current();
        let may_check = &provider.settings.classes;
        queries.iter().map(|query| answer(&index, may_check, query)).collect()
    };

    let cases = record::keep(&api.store, &provider, api.clock.now(), &request, &urls, &answers).await?;
    let results = answers
        .iter()
        .zip(&urls)
        .map(|(answer, url)| answer.result(url.as_ref().and_then(|url| cases.get(url).copied())))
        .collect();
    Ok(Json(HashCheckAnswer { results }))
}

/// A batch as the index is asked it.
struct Batch {
    request: HashCheckRequest,
    queries: Vec<Query>,
    /// Where each hash's material is online, normalised.
    urls: Vec<Option<String>>,
}

/// The batch in a body, or every problem with it: 413 for too many hashes, 422 with the
/// pointer of each malformed one.
fn read_batch(body: &[u8], max_batch: usize) -> Result<Batch, ApiError> {
    // The common case first: a well-formed batch parses straight into its type; only a
    // broken one pays for the schema's explanation of every problem.
    let request: HashCheckRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(_) => json_body(body)?,
    };
    if request.hashes.len() > max_batch {
        return Err(ApiError::TooLarge(format!(
            "at most {max_batch} hashes per request, not {}: split the batch",
            request.hashes.len()
        )));
    }
    match (queries(&request), online_urls(&request)) {
        (Ok(queries), Ok(urls)) => Ok(Batch { request, queries, urls }),
        (queries, urls) => {
            let mut errors: Vec<FieldError> = [queries.err(), urls.err()].into_iter().flatten().flatten().collect();
            errors.sort_by_cached_key(|e| document_order(&e.pointer));
            Err(ApiError::Invalid(errors))
        }
    }
}

/// Each hash's `url`, normalised as intake normalises a reported one.
fn online_urls(request: &HashCheckRequest) -> Result<Vec<Option<String>>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let urls = request
        .hashes
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.url.as_deref().and_then(|raw| match normalize_url(raw) {
                Ok(url) => Some(url),
                Err(message) => {
                    errors.push(FieldError::new(format!("/hashes/{i}/url"), message));
                    None
                }
            })
        })
        .collect();
    match errors.is_empty() {
        true => Ok(urls),
        false => Err(errors),
    }
}
