//! A process that dies at any point of its work — right after an append, between the
//! notices of a batch, before its offsets, holding claimed wake-ups, between the broker's
//! acknowledgement and the outbox mark — is made up for by the next one: every case ends
//! with exactly one notice, delivered once.

use dijkwacht_tests::deployment::{free_port, Deployment, BATCH};
use std::time::Duration;

const CASES: usize = 120;

/// Runs a process with crash point `failpoint` (`FAILPOINTS` syntax), feeds it `CASES`
/// reports, waits for it to die there, starts a clean one and checks the outcome.
/// `parts` of the first process are all unless named (to force a path, e.g. timers only).
async fn crash_and_recover(failpoint: &str, first_parts: &[&str]) {
    let deployment = Deployment::embedded().await;
    let port = free_port();
    let mut first = deployment.spawn(first_parts, port, &[("FAILPOINTS", failpoint)]);
    deployment.wait_healthy(port).await;
    deployment.submit(port, "crash", CASES).await;
    assert!(
        first.exited_within(Duration::from_secs(90)).await,
        "{failpoint} was never reached"
    );
    let delivered_before = deployment.count_events("NoticeDelivered").await;
    assert!(
        (delivered_before as usize) < CASES,
        "{failpoint}: everything was done before the crash"
    );

    let port = free_port();
    let _second = deployment.spawn(&[], port, &[]);
    deployment.wait_healthy(port).await;
    deployment.wait_delivered(CASES, Duration::from_secs(120)).await;
    // A process that died mid-batch may have sent up to a batch that is sent again.
    deployment.assert_exactly_once(CASES, CASES + BATCH).await;
}

#[tokio::test]
async fn a_crash_right_after_dispatch_recorded_its_attempts() {
    crash_and_recover("dispatch.after-append=return", &[]).await;
}

#[tokio::test]
async fn a_crash_after_some_notices_of_a_batch_left() {
    crash_and_recover("dispatch.after-post=7*off->return", &[]).await;
}

#[tokio::test]
async fn a_crash_after_the_outcomes_were_appended() {
    crash_and_recover("dispatch.after-follow-up-append=return", &[]).await;
}

#[tokio::test]
async fn a_crash_before_the_offsets_were_stored() {
    crash_and_recover("dispatch.before-offsets=return", &[]).await;
}

/// Without a relay nothing reaches the broker: the cases move only by their wake-ups, and
/// the process dies holding the first ones it claimed.
#[tokio::test]
async fn a_crash_holding_claimed_wake_ups() {
    crash_and_recover(
        "classify.after-claim=return",
        &["intake", "classify", "notices", "dispatch", "followup", "projection"],
    )
    .await;
}

#[tokio::test]
async fn a_crash_between_the_broker_acknowledgement_and_the_outbox_mark() {
    crash_and_recover("relay.before-mark=return", &[]).await;
}
