//! The classify stage: who holds a reported location, what it is, and whether a notice may
//! be sent — automatically where the evidence is clear, by analysts where it is not. Every
//! classification records the evidence it rests on.

pub mod evidence;
pub mod host;
pub mod index;
pub mod lists;
pub mod loaded_index;
mod part;
pub mod police_first;
pub mod registry;

use dijkwacht_domain::{
    Case, CaseStatus, Classified, Command, Evidence, ForwardedToHotline, HashAlgorithm, HostResolved, MediaHash,
    PartnerId, PoliceFirstRule, Reporter,
};
use dijkwacht_runtime::{RecordedEvent, Stage, StageError, WaitsFor};
use evidence::Finding;
use host::Resolver;
use index::{parse_pdq, MatchingIndex};
pub use loaded_index::SharedIndex;
pub use part::{resolver, Classify};
pub use registry::SharedRegistry;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A read-only transaction on one snapshot: what a process keeps in memory (the index, the
/// registry) is read whole from it, so its parts agree with each other and with the version
/// read with them.
pub(crate) async fn snapshot(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Where CSAM hosted abroad goes instead of a notice.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// ISO country code of the organisation's own country.
    pub home_country: String,
    /// Country → the partner id of that country's hotline in the network.
    pub hotlines: BTreeMap<String, String>,
    /// Rules that send a case to an analyst to consider a referral to the police first.
    pub police_first: Vec<PoliceFirstRule>,
}

impl Routing {
    /// CSAM on a host abroad that is not a DSA platform, in a country with a network
    /// hotline, is that hotline's to act on. Home hosts and DSA platforms get our notice.
    pub fn forward(&self, host: &HostResolved, classified: &Classified) -> Option<ForwardedToHotline> {
        if !classified.class.is_child_sexual_abuse() || host.dsa_platform || host.country == self.home_country {
            return None;
        }
        self.hotlines.get(&host.country).map(|partner| ForwardedToHotline {
            country: host.country.clone(),
            partner_id: PartnerId(partner.clone()),
        })
    }
}

pub struct ClassifyStage {
    pool: PgPool,
    index: SharedIndex,
    registry: SharedRegistry,
    resolver: Arc<dyn Resolver>,
    routing: Routing,
}

/// The strongest hash-list evidence in the index: exact before perceptual, nearest first.
pub fn hash_evidence(index: &MatchingIndex, hashes: &[MediaHash]) -> Option<Finding> {
    let listed = |list: u16| &index.lists()[list as usize];
    for hash in hashes.iter().filter(|h| h.algorithm != HashAlgorithm::Pdq) {
        if let Some(hit) = index.exact_hex(hash.algorithm, &hash.value) {
            let list = listed(hit.entry.list);
            return Some(Finding {
                class: hit.entry.class,
                evidence: Evidence::HashListMatch {
                    list: list.name.clone(),
                    list_version: list.version,
                    algorithm: hash.algorithm,
                    value: hash.value.clone(),
                    distance: None,
                },
            });
        }
    }
    hashes
        .iter()
        .filter(|h| h.algorithm == HashAlgorithm::Pdq)
        .filter_map(|h| parse_pdq(&h.value).map(|q| (h, q)))
        .flat_map(|(hash, query)| index.pdq(&query, hash.quality).into_iter().next())
        .min_by_key(|hit| hit.distance)
        .map(|hit| {
            let list = listed(hit.entry.list);
            Finding {
                class: hit.entry.class,
                evidence: Evidence::HashListMatch {
                    list: list.name.clone(),
                    list_version: list.version,
                    algorithm: HashAlgorithm::Pdq,
                    value: index.pdq_hex(hit.id),
                    distance: Some(hit.distance),
                },
            }
        })
}

impl ClassifyStage {
    pub fn new(
        pool: PgPool,
        index: SharedIndex,
        registry: SharedRegistry,
        resolver: Arc<dyn Resolver>,
        routing: Routing,
    ) -> Self {
        Self {
            pool,
            index,
            registry,
            resolver,
            routing,
        }
    }

    /// Evidence in order of strength: hash lists, URL rules, analysts' earlier decisions,
    /// a trusted partner's own category.
    async fn find(&self, case: &Case) -> Result<Option<Finding>, StageError> {
        let Some(report) = &case.report else { return Ok(None) };
        // Our own watch saw a removed location answer again: what it was is what it is
        // again, and the notice says exactly that, not more.
        if let (Reporter::ReappearanceWatch, Some(case_id), Some(class)) =
            (&report.reporter, report.reappearance_of, report.claimed_class)
        {
            return Ok(Some(Finding {
                class,
                evidence: Evidence::Reappearance { case_id },
            }));
        }
        let hashes = &report.location.hashes;
        if let Some(found) = hash_evidence(&self.index.current(), hashes) {
            return Ok(Some(found));
        }
        if let Some(found) = evidence::url_rule(&self.pool, &report.location.url).await? {
            return Ok(Some(found));
        }
        if let Some(found) = evidence::prior_decision(&self.pool, &report.location.url, hashes).await? {
            return Ok(Some(found));
        }
        Ok(evidence::trusted_claim(&self.pool, report.reporter.partner_id(), report.claimed_class).await?)
    }
}

impl Stage for ClassifyStage {
    fn name(&self) -> &'static str {
        "classify"
    }

    /// A repeat report re-triggers a case still waiting for classification.
    fn waits_for(&self) -> WaitsFor {
        WaitsFor::Events(&["ReportReceived", "ReportedAgain"])
    }

    async fn before_lookups(&self) -> Result<(), StageError> {
        self.registry.fresh(&self.pool).await?;
        Ok(())
    }

    async fn command_for(&self, _event: &RecordedEvent, case: &Case) -> Result<Option<Command>, StageError> {
        self.on_wake(case).await
    }

    async fn on_wake(&self, case: &Case) -> Result<Option<Command>, StageError> {
        let (Some(report), Some(received_at)) = (&case.report, case.received_at) else {
            return Ok(None);
        };
        if case.status != CaseStatus::Received {
            return Ok(None);
        }
        let host = self
            .registry
            .current()
            .resolve(self.resolver.as_ref(), &report.location.url)
            .await;
        let conduct_date = received_at.date_naive();
        let classification = self.find(case).await?.map(|found| Classified {
            class: found.class,
            legal_ground: found.class.legal_ground(conduct_date),
            automated: true,
            evidence: found.evidence,
        });
        let forward_to = match (&host, &classification) {
            (Some(host), Some(classified)) => self.routing.forward(host, classified),
            _ => None,
        };
        let police_first = PoliceFirstRule::first_asking(&self.routing.police_first, report, classification.as_ref())
            .map(|rule| rule.id.clone());
        Ok(Some(Command::Classify {
            host,
            classification,
            forward_to,
            police_first,
        }))
    }
}
