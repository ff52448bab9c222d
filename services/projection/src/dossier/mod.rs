//! An enforcement dossier (DSA Art. 53, Awb 4:1–4:2): what a regulator needs to act on a
//! platform that does not handle our notices, in a folder anyone can verify offline.
//!
//! * `dossier.json` — applicant, provider and its coordinator, the alleged breaches, the
//!   measure requested, the figures in total and per class and period;
//! * `notices.csv` — one row per notice: its times, its case's event count and chain head;
//! * `timeline.csv` — every event of those cases: type, time, hash in the case's chain;
//! * `dossier.html` — printable: a one-page summary, then one row per notice;
//! * `signing-key.pem` — the public key that signed it;
//! * `MANIFEST` — the SHA-256 of every file above, as `sha256sum -c` reads it, and
//!   `MANIFEST.sig`, its Ed25519 signature.
//!
//! Never media, never a reporter or a victim: URLs, times, figures and hashes. Written row by
//! row, so a dossier of any size takes the same memory.

mod files;
pub mod requests;
pub mod verify;

use crate::remit::PlatformInRemit;
use crate::statistics::{self, Figures, Period, PeriodFigures, Selection};
use chrono::{DateTime, Utc};
use dijkwacht_domain::NoticePolicy;
use dijkwacht_runtime::checkpoint::{self, Checkpoint};
use dijkwacht_runtime::signing::SigningKey;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "dijkwacht-dossier/1";
pub const MANIFEST: &str = "MANIFEST";
pub const SIGNATURE: &str = "MANIFEST.sig";
pub const PUBLIC_KEY: &str = "signing-key.pem";
/// The files the manifest lists, in its order.
pub const LISTED: [&str; 5] = [
    "dossier.json",
    "notices.csv",
    "timeline.csv",
    "dossier.html",
    PUBLIC_KEY,
];

/// A duty of the DSA the platform is alleged to have breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Breach {
    /// Art. 16(4): confirm the receipt of a notice without undue delay.
    #[serde(rename = "dsa_16_4")]
    Dsa16_4,
    /// Art. 16(5): notify the decision on a notice without undue delay.
    #[serde(rename = "dsa_16_5")]
    Dsa16_5,
    /// Art. 16(6): process notices in a timely, diligent, non-arbitrary and objective manner.
    #[serde(rename = "dsa_16_6")]
    Dsa16_6,
    /// Art. 22(1): give notices of trusted flaggers priority and decide without undue delay.
    #[serde(rename = "dsa_22_1")]
    Dsa22_1,
}

impl Breach {
    pub const ALL: [Breach; 4] = [Self::Dsa16_4, Self::Dsa16_5, Self::Dsa16_6, Self::Dsa22_1];

    pub fn name(self) -> &'static str {
        match self {
            Self::Dsa16_4 => "dsa_16_4",
            Self::Dsa16_5 => "dsa_16_5",
            Self::Dsa16_6 => "dsa_16_6",
            Self::Dsa22_1 => "dsa_22_1",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|breach| breach.name() == name)
    }

    fn alleged(self) -> AllegedBreach {
        let (article, duty) = match self {
            Self::Dsa16_4 => (
                "Regulation (EU) 2022/2065 Art. 16(4)",
                "to confirm the receipt of a notice without undue delay",
            ),
            Self::Dsa16_5 => (
                "Regulation (EU) 2022/2065 Art. 16(5)",
                "to notify its decision on a notice without undue delay",
            ),
            Self::Dsa16_6 => (
                "Regulation (EU) 2022/2065 Art. 16(6)",
                "to process notices in a timely, diligent, non-arbitrary and objective manner",
            ),
            Self::Dsa22_1 => (
                "Regulation (EU) 2022/2065 Art. 22(1)",
                "to give notices of trusted flaggers priority and decide on them without undue delay",
            ),
        };
        AllegedBreach {
            breach: self,
            article: article.into(),
            duty: duty.into(),
        }
    }
}

/// What a dossier is asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DossierRequest {
    pub platform_id: String,
    /// Notices delivered from this instant (inclusive); from the first where absent.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Notices delivered before this instant; to the last where absent.
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// One class of content; every class within the remit where absent.
    #[serde(default)]
    pub class: Option<String>,
    /// The duties the platform is alleged to have breached; at least one.
    #[schemars(length(min = 1))]
    pub breaches: Vec<Breach>,
    /// The measure requested of the regulator; a standard request where absent.
    #[serde(default)]
    pub measure: Option<String>,
}

/// The applicant: the trusted flagger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Applicant {
    pub organisation: String,
    pub contact_email: String,
    /// The Digital Services Coordinator that awarded the trusted-flagger status.
    pub designated_by: String,
    pub designation_reference: String,
}

/// The provider, and the coordinator of the country it is established in (DSA Art. 56).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Provider {
    pub platform_id: String,
    pub name: String,
    pub country: String,
    pub coordinator: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AllegedBreach {
    pub breach: Breach,
    pub article: String,
    /// The duty, in the regulation's words.
    pub duty: String,
}

/// `dossier.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Dossier {
    /// `dijkwacht-dossier/1`.
    pub format: String,
    pub dossier_id: uuid::Uuid,
    pub created_at: DateTime<Utc>,
    pub applicant: Applicant,
    pub provider: Provider,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The classes counted; every class where absent.
    pub classes: Option<Vec<String>>,
    pub alleged_breaches: Vec<AllegedBreach>,
    pub measure_requested: String,
    /// The notices in `notices.csv`.
    pub notices: u64,
    pub figures: Figures,
    /// Each class in each month.
    pub periods: Vec<PeriodFigures>,
    /// The key that signed `MANIFEST`, as `signing-key.pem` holds it.
    pub signing_key_id: String,
    /// The latest signed checkpoint of the whole event log when the dossier was made: the
    /// events of these notices up to its position are anchored in its root, so removing
    /// any of them later shows (`dijkwacht verify`).
    pub checkpoint: Option<Anchor>,
}

/// A checkpoint and the public key that signed it (which may be an older one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Anchor {
    pub checkpoint: Checkpoint,
    pub public_key_pem: String,
}

/// Who asks, against whom, and how: everything a dossier needs besides the store.
pub struct Context<'a> {
    pub applicant: &'a NoticePolicy,
    pub provider: PlatformInRemit,
    pub coordinator: String,
    /// The classes the requester may see (its remit); every class where absent.
    pub classes: Option<Vec<String>>,
    pub key: &'a SigningKey,
    pub now: DateTime<Utc>,
}

pub const STANDARD_MEASURE: &str = "An investigation of the provider's handling of notices of the trusted flagger \
     named above, and an order to comply with the duties named above (Regulation (EU) 2022/2065 Art. 51).";

/// A finished dossier: its folder and the `.tar` of it.
#[derive(Debug, Clone)]
pub struct Built {
    pub dossier_id: uuid::Uuid,
    pub folder: PathBuf,
    pub tar: PathBuf,
    pub notices: u64,
}

/// Writes the dossier into `out/dossier-{id}/` and `out/dossier-{id}.tar`.
pub async fn build(
    pool: &PgPool,
    request: &DossierRequest,
    context: &Context<'_>,
    dossier_id: uuid::Uuid,
    out: &Path,
) -> anyhow::Result<Built> {
    anyhow::ensure!(
        !request.breaches.is_empty(),
        "a dossier names at least one alleged breach"
    );
    let name = format!("dossier-{dossier_id}");
    let folder = out.join(&name);
    std::fs::create_dir_all(&folder)?;
    let selection = Selection {
        platform_id: context.provider.platform_id.clone(),
        from: request.from,
        to: request.to,
        classes: context.classes.clone(),
        period: Period::Month,
    };
    let statistics = statistics::compute(pool, &selection, context.now).await?;
    context.key.register(pool, context.now).await?;
    let mut dossier = Dossier {
        format: FORMAT.into(),
        dossier_id,
        created_at: context.now,
        applicant: Applicant {
            organisation: context.applicant.organisation.clone(),
            contact_email: context.applicant.contact_email.clone(),
            designated_by: context.applicant.designated_by.clone(),
            designation_reference: context.applicant.designation_reference.clone(),
        },
        provider: Provider {
            platform_id: context.provider.platform_id.clone(),
            name: context.provider.name.clone(),
            country: context.provider.country.clone(),
            coordinator: context.coordinator.clone(),
        },
        from: request.from,
        to: request.to,
        classes: context.classes.clone(),
        alleged_breaches: request.breaches.iter().map(|breach| breach.alleged()).collect(),
        measure_requested: request.measure.clone().unwrap_or_else(|| STANDARD_MEASURE.into()),
        notices: 0,
        figures: statistics.total,
        periods: statistics.periods,
        signing_key_id: context.key.id(),
        checkpoint: anchor(pool).await?,
    };
    dossier.notices = files::notices(pool, &selection, &dossier, &folder).await?;
    files::timeline(pool, &selection, &folder).await?;
    std::fs::write(folder.join("dossier.json"), serde_json::to_vec_pretty(&dossier)?)?;
    std::fs::write(folder.join(PUBLIC_KEY), context.key.public_pem())?;
    let manifest = manifest(&folder)?;
    std::fs::write(folder.join(MANIFEST), &manifest)?;
    std::fs::write(folder.join(SIGNATURE), context.key.sign(manifest.as_bytes()))?;
    let tar = out.join(format!("{name}.tar"));
    let mut archive = tar::Builder::new(std::fs::File::create(&tar)?);
    archive.append_dir_all(&name, &folder)?;
    archive.into_inner()?.flush()?;
    Ok(Built {
        dossier_id,
        folder,
        tar,
        notices: dossier.notices,
    })
}

async fn anchor(pool: &PgPool) -> Result<Option<Anchor>, sqlx::Error> {
    let Some(checkpoint) = checkpoint::latest(pool).await? else {
        return Ok(None);
    };
    let public_key_pem: String = sqlx::query_scalar("SELECT public_key_pem FROM signing_keys WHERE key_id = $1")
        .bind(&checkpoint.key_id)
        .fetch_one(pool)
        .await?;
    Ok(Some(Anchor {
        checkpoint,
        public_key_pem,
    }))
}

/// `sha256sum` lines of the listed files.
fn manifest(folder: &Path) -> std::io::Result<String> {
    let mut manifest = String::new();
    for file in LISTED {
        manifest.push_str(&format!("{}  {file}\n", sha256_file(&folder.join(file))?));
    }
    Ok(manifest)
}

pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}
