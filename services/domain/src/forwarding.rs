//! CSAM hosted abroad goes to the hotline of the hosting country, which acts on it under its
//! own law. The forward is sent attempt by attempt like a notice, and the case closes when
//! the hotline confirms it acts, or unconfirmed when its window passes.

use crate::case::{Case, CaseStatus};
use crate::decide::{DispatchOutcome, DispatchPolicy, NextAttempt, Refusal};
use crate::event::*;
use chrono::{DateTime, Duration, Utc};

impl Case {
    /// Whether the forward still has to leave: forwarded, not sent, not given up.
    fn forward_owed(&self) -> bool {
        self.status == CaseStatus::Forwarded && self.forward.sent.is_none() && self.forward.gave_up_reason.is_none()
    }

    pub(crate) fn start_forward(
        &self,
        lost_after: Duration,
        policy: DispatchPolicy,
        channel: Option<Channel>,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let Some(forwarded) = self.forwarded.as_ref().filter(|_| self.forward_owed()) else {
            return vec![];
        };
        let state = &self.forward;
        let failed = |attempt, reason: String, retry_at| {
            CaseEvent::ForwardFailed(ForwardFailed {
                partner_id: forwarded.partner_id.clone(),
                attempt,
                reason,
                retry_at,
            })
        };
        let Some(channel) = channel.filter(|channel| matches!(channel, Channel::Http { .. })) else {
            return vec![failed(
                state.sending.attempts,
                format!(
                    "hotline {} has no forwarding API in the registry: forward it by other means",
                    forwarded.partner_id
                ),
                None,
            )];
        };
        let start = |attempt| {
            CaseEvent::ForwardStarted(ForwardStarted {
                partner_id: forwarded.partner_id.clone(),
                attempt,
                channel: channel.clone(),
            })
        };
        NextAttempt::of(&state.sending, lost_after, policy.max_attempts, now).events(now, failed, start)
    }

    pub(crate) fn record_forward_outcome(
        &self,
        attempt: u32,
        outcome: DispatchOutcome,
        policy: DispatchPolicy,
        confirm_within: Duration,
        now: DateTime<Utc>,
    ) -> Vec<CaseEvent> {
        let (Some(forwarded), Some(in_flight)) = (&self.forwarded, &self.forward.sending.in_flight) else {
            return vec![];
        };
        if in_flight.attempt != attempt {
            return vec![];
        }
        let partner_id = forwarded.partner_id.clone();
        let failed = |reason, retry_at| {
            CaseEvent::ForwardFailed(ForwardFailed {
                partner_id: partner_id.clone(),
                attempt,
                reason,
                retry_at,
            })
        };
        let sent = |reference, _| {
            CaseEvent::ForwardSent(ForwardSent {
                partner_id: partner_id.clone(),
                attempt,
                reference,
                confirm_by: now + confirm_within,
            })
        };
        let refused = "the hotline refused the forward";
        vec![policy.settle((self.id.0, attempt), outcome, refused, now, sent, failed)]
    }

    /// The hotline's confirmation closes the case; one that comes after the window closed
    /// it unconfirmed is still recorded, as a fact about the hotline.
    pub(crate) fn confirm_forward(
        &self,
        recorded_by: String,
        reference: Option<String>,
        note: Option<String>,
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let forwarded = self.forwarded.as_ref().ok_or(Refusal::NotForwarded)?;
        if self.forward.confirmed.is_some() {
            return Ok(vec![]);
        }
        if self.status == CaseStatus::Retracted {
            return Err(Refusal::CaseClosed);
        }
        let confirmed = CaseEvent::ForwardConfirmed(ForwardConfirmed {
            partner_id: forwarded.partner_id.clone(),
            recorded_by,
            reference,
            note,
        });
        if self.is_finished() {
            return Ok(vec![confirmed]);
        }
        Ok(vec![
            confirmed,
            CaseEvent::CaseClosed(CaseClosed {
                outcome: CaseOutcome::Forwarded,
            }),
        ])
    }

    pub(crate) fn close_forward(&self, now: DateTime<Utc>) -> Vec<CaseEvent> {
        let window_passed = self.forward.sent.as_ref().is_some_and(|sent| sent.confirm_by <= now);
        if self.status != CaseStatus::Forwarded || !window_passed {
            return vec![];
        }
        vec![CaseEvent::CaseClosed(CaseClosed {
            outcome: CaseOutcome::ForwardUnconfirmed,
        })]
    }
}
