//! What the dispatch part tells its operators: each notice's outcome per platform and
//! channel, logged and counted together.

use dijkwacht_domain::DispatchOutcome;
use dijkwacht_runtime::telemetry::events::InternalEvent;
use dijkwacht_runtime::telemetry::metrics::{registry, Kind, Metric};

pub const NOTICES: Metric = Metric {
    name: "dijkwacht_dispatch_notices_total",
    help: "Notices sent, by platform, channel and outcome (delivered, rejected, failed).",
    kind: Kind::Counter,
    labels: &["platform", "channel", "outcome"],
};

/// One message's outcome, for the `notices` it carried (one, or a group).
#[derive(Debug)]
pub struct NoticesSent<'a> {
    pub platform: &'a str,
    pub channel: &'static str,
    pub notices: usize,
    pub outcome: &'a DispatchOutcome,
}

impl InternalEvent for NoticesSent<'_> {
    fn emit(self) {
        let outcome = match self.outcome {
            DispatchOutcome::Delivered { .. } => "delivered",
            DispatchOutcome::Rejected { reason, .. } | DispatchOutcome::Failed { reason, .. } => {
                tracing::warn!(platform = self.platform, notices = self.notices, channel = self.channel, %reason, "notice not delivered");
                match self.outcome {
                    DispatchOutcome::Rejected { .. } => "rejected",
                    _ => "failed",
                }
            }
        };
        registry().add(&NOTICES, &[self.platform, self.channel, outcome], self.notices as u64);
    }
}
