//! Answering a batch: each hash checked on its own against the matching index, seeing only
//! the classes the provider may check. No I/O: the same batch against the same index gives
//! the same answers, in whatever order or batch the hashes come.

use crate::api::{CheckResult, HashCheckRequest, HashToCheck};
use dijkwacht_classify::index::{parse_pdq, Hit, MatchingIndex, Pdq, PDQ_MIN_QUALITY};
use dijkwacht_domain::{ContentClass, HashAlgorithm, MediaHash};
use dijkwacht_http::FieldError;

/// A hash as the index compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Exact {
        algorithm: HashAlgorithm,
        /// The first `algorithm.hex_len() / 2` bytes are the digest.
        digest: [u8; 32],
    },
    Pdq {
        hash: Pdq,
        quality: u8,
    },
}

impl Query {
    /// The query for one hash of a request, or what is wrong with it and in which of its
    /// fields (`value` or `quality`).
    pub fn parse(item: &HashToCheck) -> Result<Query, (&'static str, String)> {
        let algorithm = item.algorithm;
        MediaHash::check(algorithm, &item.value, item.quality).map_err(|e| (e.field(), e.to_string()))?;
        let checked = "checked above";
        match (algorithm, item.quality) {
            (HashAlgorithm::Pdq, None) => Err((
                "quality",
                "a pdq hash needs the quality its hasher reported (0-100)".into(),
            )),
            (HashAlgorithm::Pdq, Some(quality)) => Ok(Query::Pdq {
                hash: parse_pdq(&item.value).expect(checked),
                quality,
            }),
            _ => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&item.value, &mut digest[..algorithm.hex_len() / 2]).expect(checked);
                Ok(Query::Exact { algorithm, digest })
            }
        }
    }
}

/// Every hash of a request as a query, or every problem with its JSON Pointer.
pub fn queries(request: &HashCheckRequest) -> Result<Vec<Query>, Vec<FieldError>> {
    if request.hashes.is_empty() {
        return Err(vec![FieldError::new("/hashes", "must hold at least one hash")]);
    }
    let mut queries = Vec::with_capacity(request.hashes.len());
    let mut errors = Vec::new();
    for (i, item) in request.hashes.iter().enumerate() {
        match Query::parse(item) {
            Ok(query) => queries.push(query),
            Err((field, message)) => errors.push(FieldError::new(format!("/hashes/{i}/{field}"), message)),
        }
    }
    match errors.is_empty() {
        true => Ok(queries),
        false => Err(errors),
    }
}

/// The list entry a hash matched, for the hit record (never for the provider's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedHit {
    pub class: ContentClass,
    pub list: String,
    pub list_version: i64,
    pub algorithm: HashAlgorithm,
    /// The listed hash: for PDQ the list's, which may differ from the provider's.
    pub listed_value: String,
    pub distance: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Listed(ListedHit),
    Unlisted,
    NotChecked(&'static str),
}

impl Answer {
    /// What the provider is told; `case_id` names the case a hit at its URL opened.
    pub fn result(&self, case_id: Option<dijkwacht_domain::CaseId>) -> CheckResult {
        match self {
            Answer::Listed(hit) => CheckResult::Match {
                class: hit.class,
                distance: hit.distance,
                case_id,
            },
            Answer::Unlisted => CheckResult::NoMatch,
            Answer::NotChecked(reason) => CheckResult::NotChecked {
                reason: (*reason).to_owned(),
            },
        }
    }
}

const LOW_QUALITY: &str = "pdq quality below 50: too unreliable to compare";

/// The answer for one hash, seeing only the entries of classes in `may_check`: exact
/// digests by lookup, PDQ by the nearest listed hash within its list's threshold.
pub fn answer(index: &MatchingIndex, may_check: &[ContentClass], query: &Query) -> Answer {
    let visible = |hit: &Hit| may_check.contains(&hit.entry.class);
    let (hit, algorithm, listed_value) = match query {
        Query::Exact { algorithm, digest } => {
            let digest = &digest[..algorithm.hex_len() / 2];
            let Some(hit) = index.exact_all(*algorithm, digest).find(visible) else {
                return Answer::Unlisted;
            };
            (hit, *algorithm, hex::encode(digest))
        }
        Query::Pdq { quality, .. } if *quality < PDQ_MIN_QUALITY => return Answer::NotChecked(LOW_QUALITY),
        Query::Pdq { hash, quality } => {
            let Some(hit) = index.pdq(hash, Some(*quality)).into_iter().find(visible) else {
                return Answer::Unlisted;
            };
            (hit, HashAlgorithm::Pdq, index.pdq_hex(hit.id))
        }
    };
    let list = &index.lists()[hit.entry.list as usize];
    Answer::Listed(ListedHit {
        class: hit.entry.class,
        list: list.name.clone(),
        list_version: list.version,
        algorithm,
        listed_value,
        distance: (algorithm == HashAlgorithm::Pdq).then_some(hit.distance),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dijkwacht_classify::index::{IndexBuilder, ListInfo};
    use proptest::prelude::*;

    const SHA256: &str = "e395a0630f3d1aebb0f5ded0762eebdc342b0a0e0d9ed2b2f1d0d0afb8c7621e";
    const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    fn index() -> MatchingIndex {
        let mut builder = IndexBuilder::new(1);
        let csam = builder.list(ListInfo {
            name: "national".into(),
            version: 3,
            pdq_max_distance: 31,
        });
        let terror = builder.list(ListInfo {
            name: "tat".into(),
            version: 1,
            pdq_max_distance: 31,
        });
        builder.add(csam, HashAlgorithm::Sha256, SHA256, None, ContentClass::Csam);
        builder.add(
            terror,
            HashAlgorithm::Sha256,
            SHA256,
            None,
            ContentClass::TerroristContent,
        );
        builder.add(csam, HashAlgorithm::Pdq, PDQ, Some(100), ContentClass::Csam);
        builder.add(csam, HashAlgorithm::Md5, &"ab".repeat(16), None, ContentClass::Csam);
        builder.build()
    }

    fn item(algorithm: HashAlgorithm, value: &str, quality: Option<u8>) -> HashToCheck {
        HashToCheck {
            algorithm,
            value: value.into(),
            quality,
            url: None,
        }
    }

    fn check(may_check: &[ContentClass], item: &HashToCheck) -> Answer {
        answer(&index(), may_check, &Query::parse(item).unwrap())
    }

    #[test]
    fn a_digest_listed_in_two_classes_is_found_by_a_provider_that_may_check_either() {
        let listed = item(HashAlgorithm::Sha256, &SHA256.to_uppercase(), None);
        let Answer::Listed(hit) = check(&[ContentClass::TerroristContent], &listed) else {
            panic!("the terrorist-content entry is found")
        };
        assert_eq!((hit.class, hit.list.as_str()), (ContentClass::TerroristContent, "tat"));
        assert_eq!(hit.listed_value, SHA256, "recorded as listed, in lowercase");
        assert_eq!(check(&[ContentClass::Ncii], &listed), Answer::Unlisted);
    }

    #[test]
    fn queries_say_what_is_wrong_with_each_hash_and_where() {
        let request = HashCheckRequest {
            hashes: vec![
                item(HashAlgorithm::Md5, &"ab".repeat(16), None),
                item(HashAlgorithm::Sha1, &"ab".repeat(16), None),
                item(HashAlgorithm::Pdq, PDQ, None),
                item(HashAlgorithm::Sha256, &"zz".repeat(32), None),
                item(HashAlgorithm::Md5, &"ab".repeat(16), Some(90)),
            ],
        };
        let errors = queries(&request).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/hashes/1/value",
                "/hashes/2/quality",
                "/hashes/3/value",
                "/hashes/4/quality"
            ]
        );
        assert!(
            errors[0].message.contains("40 hexadecimal digits"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_low_quality_pdq_hash_is_not_checked_rather_than_unlisted() {
        assert_eq!(
            check(&[ContentClass::Csam], &item(HashAlgorithm::Pdq, PDQ, Some(49))),
            Answer::NotChecked(LOW_QUALITY)
        );
        let Answer::Listed(hit) = check(&[ContentClass::Csam], &item(HashAlgorithm::Pdq, PDQ, Some(50))) else {
            panic!("quality 50 is compared")
        };
        assert_eq!(hit.distance, Some(0));
    }

    fn any_item() -> impl Strategy<Value = HashToCheck> {
        prop_oneof![
            Just(item(HashAlgorithm::Sha256, SHA256, None)),
            Just(item(HashAlgorithm::Md5, &"ab".repeat(16), None)),
            Just(item(HashAlgorithm::Pdq, PDQ, Some(80))),
            Just(item(HashAlgorithm::Pdq, PDQ, Some(20))),
            any::<[u8; 16]>().prop_map(|d| item(
                HashAlgorithm::Md5,
                &d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                None
            )),
            (any::<[u8; 32]>(), 50u8..=100).prop_map(|(d, q)| item(
                HashAlgorithm::Pdq,
                &d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                Some(q)
            )),
        ]
    }

    proptest! {
        /// Shuffled, split or alone, every hash gets the answer it gets alone.
        #[test]
        fn the_answer_never_depends_on_order_or_batch(
            batch in prop::collection::vec(any_item(), 1..40),
            order in any::<prop::sample::Index>(),
            split in any::<prop::sample::Index>(),
        ) {
            let index = index();
            let may = [ContentClass::Csam];
            let alone: Vec<Answer> = batch
                .iter()
                .map(|item| answer(&index, &may, &Query::parse(item).unwrap()))
                .collect();
            let mut rotated = batch.clone();
            let by = order.index(batch.len());
            rotated.rotate_left(by);
            let request = HashCheckRequest { hashes: rotated };
            let answers: Vec<Answer> = queries(&request).unwrap().iter().map(|q| answer(&index, &may, q)).collect();
            let mut expected = alone.clone();
            expected.rotate_left(by);
            prop_assert_eq!(answers, expected);
            let (first, second) = batch.split_at(split.index(batch.len()));
            let parts: Vec<Answer> = [first, second]
                .iter()
                .filter(|part| !part.is_empty())
                .flat_map(|part| queries(&HashCheckRequest { hashes: part.to_vec() }).unwrap())
                .map(|q| answer(&index, &may, &q))
                .collect();
            prop_assert_eq!(parts, alone);
        }
    }
}
