//! The regulators' API over the read models: how a platform handles our notices.

use crate::{platform_compliance, PlatformCompliance};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Json;
use dijkwacht_http::{ApiError, Caller, DocumentedRouter, Edge, Limits};
use dijkwacht_runtime::EventStore;

/// A regulator's key carries it.
pub const SCOPE_COMPLIANCE_READ: &str = "compliance:read";

/// The state of the regulators' routes.
#[derive(Clone)]
pub struct RegulatorApi {
    pub store: EventStore,
    pub limits: Limits,
}

impl Edge for RegulatorApi {
    fn pool(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The regulators' routes with their OpenAPI description.
pub fn documented() -> DocumentedRouter<RegulatorApi> {
    DocumentedRouter::new().route(
        "get",
        "/v1/regulator/platforms/{platform_id}/compliance",
        get(platform_compliance_report),
        |op| {
            op.summary("How a platform handles our notices")
                .scope(SCOPE_COMPLIANCE_READ)
                .path_parameter("platform_id", "the platform registry id")
                .json_response::<PlatformCompliance>(200, "notices, removals, time to removal")
                .error(404, "no such platform")
        },
    )
}

async fn platform_compliance_report(
    State(api): State<RegulatorApi>,
    caller: Caller,
    Path(platform_id): Path<String>,
) -> Result<Json<PlatformCompliance>, ApiError> {
    caller.require(SCOPE_COMPLIANCE_READ)?;
    platform_compliance(api.store.pool(), &platform_id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}
