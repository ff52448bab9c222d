//! What a regulator may see: platforms by id or by their country of establishment, and
//! classes of content. Outside its remit a platform does not exist for it.

use serde::Serialize;
use sqlx::PgPool;

/// One regulator's remit, as the reference data gives it. An absent list does not limit
/// its dimension; a regulator with none sees nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remit {
    pub platforms: Option<Vec<String>>,
    pub countries: Option<Vec<String>>,
    pub classes: Option<Vec<String>>,
}

/// A platform as a regulator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PlatformInRemit {
    pub platform_id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2 code of the country it is established in.
    pub country: String,
}

impl Remit {
    /// Every platform and every class: staff's view.
    pub fn all() -> Self {
        Self {
            classes: Some(
                dijkwacht_domain::ContentClass::ALL
                    .iter()
                    .map(|class| class.as_str().to_owned())
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// The remit of `regulator_id`; nothing for a regulator the reference data does not list.
    pub async fn of(pool: &PgPool, regulator_id: &str) -> Result<Self, sqlx::Error> {
        type Row = (Option<Vec<String>>, Option<Vec<String>>, Option<Vec<String>>);
        let row: Option<Row> =
            sqlx::query_as("SELECT platforms, countries, classes FROM regulators WHERE regulator_id = $1")
                .bind(regulator_id)
                .fetch_optional(pool)
                .await?;
        Ok(row.map_or_else(Self::default, |(platforms, countries, classes)| Self {
            platforms,
            countries,
            classes,
        }))
    }

    /// A remit of classes alone covers every platform (the CSAM authority's, on every host).
    pub fn covers(&self, platform: &PlatformInRemit) -> bool {
        let named =
            |list: &Option<Vec<String>>, value: &str| list.as_ref().is_some_and(|list| list.iter().any(|v| v == value));
        match (&self.platforms, &self.countries) {
            (None, None) => self.classes.is_some(),
            _ => named(&self.platforms, &platform.platform_id) || named(&self.countries, &platform.country),
        }
    }

    /// The classes a request may count: those asked for within the remit; `None` when the
    /// class asked for is outside it. `Some(None)` means every class.
    pub fn classes_for(&self, asked: Option<&str>) -> Option<Option<Vec<String>>> {
        match (asked, &self.classes) {
            (None, remit) => Some(remit.clone()),
            (Some(class), None) => Some(Some(vec![class.to_owned()])),
            (Some(class), Some(remit)) => remit.iter().any(|c| c == class).then(|| Some(vec![class.to_owned()])),
        }
    }

    /// The platforms in the remit, by id.
    pub async fn platforms(&self, pool: &PgPool) -> Result<Vec<PlatformInRemit>, sqlx::Error> {
        let all: Vec<(String, String, String)> =
            sqlx::query_as("SELECT platform_id, name, country FROM platforms ORDER BY platform_id")
                .fetch_all(pool)
                .await?;
        Ok(all
            .into_iter()
            .map(|(platform_id, name, country)| PlatformInRemit {
                platform_id,
                name,
                country,
            })
            .filter(|platform| self.covers(platform))
            .collect())
    }

    /// The platform, if it exists and is in the remit.
    pub async fn platform(&self, pool: &PgPool, platform_id: &str) -> Result<Option<PlatformInRemit>, sqlx::Error> {
        Ok(PlatformInRemit::load(pool, platform_id)
            .await?
            .filter(|platform| self.covers(platform)))
    }
}

impl PlatformInRemit {
    /// The registered platform `platform_id`, whoever asks.
    pub async fn load(pool: &PgPool, platform_id: &str) -> Result<Option<Self>, sqlx::Error> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT name, country FROM platforms WHERE platform_id = $1")
                .bind(platform_id)
                .fetch_optional(pool)
                .await?;
        Ok(row.map(|(name, country)| Self {
            platform_id: platform_id.to_owned(),
            name,
            country,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(id: &str, country: &str) -> PlatformInRemit {
        PlatformInRemit {
            platform_id: id.into(),
            name: id.into(),
            country: country.into(),
        }
    }

    fn list(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn a_coordinator_sees_the_platforms_of_its_country_in_every_class() {
        let remit = Remit {
            countries: list(&["NL"]),
            ..Remit::default()
        };
        assert!(remit.covers(&platform("a", "NL")));
        assert!(!remit.covers(&platform("b", "IE")));
        assert_eq!(remit.classes_for(Some("ncii")), Some(list(&["ncii"])));
        assert_eq!(remit.classes_for(None), Some(None));
    }

    #[test]
    fn the_csam_authority_sees_its_classes_on_every_host_and_nothing_else() {
        let remit = Remit {
            classes: list(&["csam", "terrorist_content"]),
            ..Remit::default()
        };
        assert!(remit.covers(&platform("anywhere", "US")));
        assert_eq!(remit.classes_for(Some("ncii")), None);
        assert_eq!(remit.classes_for(None), Some(list(&["csam", "terrorist_content"])));
    }

    #[test]
    fn a_regulator_without_a_remit_sees_nothing() {
        assert!(!Remit::default().covers(&platform("a", "NL")));
    }
}
