//! Referrals per month and how long their holds lasted: for the annual report and the
//! trends the organisation publishes. Counts and durations only.

use crate::PoliceApi;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Json;
use dijkwacht_http::{ApiError, Caller, DocumentedRouter, FieldError, SCOPE_REVIEW};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MonthFigures {
    /// `YYYY-MM`, by the month the hold began (UTC).
    pub month: String,
    pub referrals: i64,
    pub released: i64,
    /// Held still, as of now.
    pub still_held: i64,
    /// Of the released holds: from the referral decision to the release.
    pub median_hold_seconds: Option<f64>,
    pub max_hold_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct FiguresQuery {
    pub year: Option<i32>,
}

pub(crate) fn routes(router: DocumentedRouter<PoliceApi>) -> DocumentedRouter<PoliceApi> {
    router.route("get", "/v1/police/figures", get(figures), |op| {
        op.summary("Referrals to the police per month, and how long the holds lasted")
            .scope(SCOPE_REVIEW)
            .query_parameter("year", false, "only the months of this year")
            .json_response::<Vec<MonthFigures>>(200, "one row per month with referrals, oldest first")
            .error(422, "a query parameter is malformed")
    })
}

async fn figures(
    State(api): State<PoliceApi>,
    caller: Caller,
    query: Result<Query<FiguresQuery>, QueryRejection>,
) -> Result<Json<Vec<MonthFigures>>, ApiError> {
    caller.analyst()?;
    let Query(query) = query.map_err(|e| ApiError::Invalid(vec![FieldError::new("", e.body_text())]))?;
    Ok(Json(monthly(api.store.pool(), query.year).await?))
}

pub async fn monthly(pool: &sqlx::PgPool, year: Option<i32>) -> Result<Vec<MonthFigures>, sqlx::Error> {
    type Row = (String, i64, i64, i64, Option<f64>, Option<f64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT to_char(month AT TIME ZONE 'UTC', 'YYYY-MM'), referrals, released, still_held, \
                median_hold_seconds, max_hold_seconds::float8 \
         FROM police_referrals_monthly \
         WHERE $1::int IS NULL OR extract(year FROM month AT TIME ZONE 'UTC') = $1 ORDER BY month",
    )
    .bind(year)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(month, referrals, released, still_held, median_hold_seconds, max_hold_seconds)| MonthFigures {
                month,
                referrals,
                released,
                still_held,
                median_hold_seconds,
                max_hold_seconds,
            },
        )
        .collect())
}
