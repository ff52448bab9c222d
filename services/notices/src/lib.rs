//! The notice stage: turns a classification into a DSA Art. 16 notice for the platform
//! that holds the content. The wording is composed by the domain, from the case alone.

use dijkwacht_domain::{Case, CaseStatus, Command, NoticeId, NoticePolicy};
use dijkwacht_runtime::config::Settings;
use dijkwacht_runtime::{Part, Process, RecordedEvent, Stage, StageError, WaitsFor};

pub struct NoticeStage {
    policy: NoticePolicy,
}

impl NoticeStage {
    pub fn new(policy: NoticePolicy) -> Self {
        Self { policy }
    }
}

/// The notices part: its stage, which names the organisation from the settings.
pub struct Notices;

impl Part for Notices {
    fn name(&self) -> &'static str {
        "notices"
    }

    fn runs_stage(&self) -> bool {
        true
    }

    fn check(&self, _settings: &Settings) -> anyhow::Result<()> {
        Ok(())
    }

    fn start<'a>(&'a self, process: &'a mut Process) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        process.spawn_stage(NoticeStage::new(process.settings.notice_policy()));
        Box::pin(async { Ok(()) })
    }
}

impl Stage for NoticeStage {
    fn name(&self) -> &'static str {
        "notices"
    }

    /// A case held for the police comes back here when it is released.
    fn waits_for(&self) -> WaitsFor {
        WaitsFor::Events(&["Classified", "PoliceReleased"])
    }

    async fn command_for(&self, _event: &RecordedEvent, case: &Case) -> Result<Option<Command>, StageError> {
        self.on_wake(case).await
    }

    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        // Without a known host there is nobody to send a notice to: the case waits in the
        // operator queue (by its state) until the host is known; a refusal here would only
        // fill the dead-letter topic.
        let ready = case.status == CaseStatus::Classified && case.host.is_some();
        Ok(ready.then(|| Command::IssueNotice {
            notice_id: NoticeId::new(),
            policy: self.policy.clone(),
        }))
    }
}
