//! The diff report: which fields differ, how often, and whether more often than between two stable answers.
//! Pure: the shadow listener feeds an [`Accumulator`] and reads a [`DiffReport`] from it.
//!
//! Noise is cancelled as Diffy does. Every request is answered by the primary (a stable instance), the
//! candidate and a secondary (another stable instance). For each field, `candidate_rate` is the percentage of
//! compared requests where candidate ≠ primary and `noise_rate` where secondary ≠ primary; a field is *real*
//! when the candidate's rate exceeds the noise by both margins. A timestamp or a request id differs between
//! any two answers, so its two rates are equal and it is not real.
//!
//! Whether a request has a real difference depends on which fields turn out real, which is only known when
//! the report is read; so the accumulator keeps, per distinct set of candidate fields (a *signature*), how
//! many requests had it. Memory is bounded: at most [`MAX_FIELDS`] distinct fields (later ones are counted
//! together as [`OTHER_FIELDS`]) and [`MAX_SIGNATURES`] signatures (later requests with a new signature are
//! counted per field only, and counted as having a real difference as often as their real fields allow:
//! the rate errs towards failing).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sluice_spec::NoiseMargin;

use crate::compare::{Difference, short};

/// Distinct fields tracked one by one.
pub const MAX_FIELDS: usize = 2_048;
/// Distinct signatures (sets of fields in which the candidate differed on one request) tracked.
pub const MAX_SIGNATURES: usize = 4_096;
/// Fields held in all signatures together, so a few huge signatures cannot take the memory of many.
const MAX_SIGNATURE_FIELDS: usize = 262_144;
/// Bytes of field names held, so huge JSON keys cannot take the memory either.
const MAX_FIELD_NAME_BYTES: usize = 1 << 20;
/// Examples kept per field.
pub const MAX_EXAMPLES: usize = 3;
/// The field under which fields beyond [`MAX_FIELDS`] are counted.
pub const OTHER_FIELDS: &str = "(other fields)";
/// Fields named in a summary.
const SUMMARY_FIELDS: usize = 5;

/// Counts differences between answers to shadowed requests.
#[derive(Clone, Debug)]
pub struct Accumulator {
    noise: NoiseMargin,
    fields: Vec<FieldCounts>,
    index: HashMap<String, u32>,
    name_bytes: usize,
    /// Requests per signature (sorted field indices); requests without a candidate difference are not kept.
    signatures: HashMap<Box<[u32]>, u64>,
    signature_fields: usize,
    /// Requests whose signature could not be kept, and how many of them differed in each field.
    overflow: u64,
    overflow_fields: HashMap<u32, u64>,
    counts: Counts,
}

/// How many requests ended each way.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    received: u64,
    compared: u64,
    skipped: u64,
    dropped: u64,
    unanswered: u64,
    refused: u64,
}

#[derive(Clone, Debug)]
struct FieldCounts {
    name: String,
    candidate: u64,
    noise: u64,
    examples: Vec<Example>,
}

impl Accumulator {
    /// An empty accumulator judging fields with these margins.
    pub fn new(noise: NoiseMargin) -> Self {
        Accumulator {
            noise,
            fields: Vec::new(),
            index: HashMap::new(),
            name_bytes: 0,
            signatures: HashMap::new(),
            signature_fields: 0,
            overflow: 0,
            overflow_fields: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// Records one compared request: `request` names it in examples (`GET /path`), `candidate` holds the
    /// candidate's differences from the primary, `noise` the secondary's.
    pub fn record(&mut self, request: &str, candidate: &[Difference], noise: &[Difference]) {
        self.counts.received += 1;
        self.counts.compared += 1;
        let ids: Vec<u32> = candidate
            .iter()
            .map(|difference| self.field_id(&difference.field))
            .collect();
        for (difference, &id) in candidate.iter().zip(&ids) {
            let field = &mut self.fields[id as usize];
            // Fields counted as OTHER_FIELDS have no examples: they would not say which field they show.
            if field.examples.len() < MAX_EXAMPLES && field.name == difference.field {
                field.examples.push(Example {
                    request: short(request),
                    primary: difference.expected.clone(),
                    candidate: difference.actual.clone(),
                });
            }
        }
        let mut signature = ids;
        signature.sort_unstable();
        signature.dedup();
        for &id in &signature {
            self.fields[id as usize].candidate += 1;
        }
        let mut noisy: Vec<u32> = noise
            .iter()
            .map(|difference| self.field_id(&difference.field))
            .collect();
        noisy.sort_unstable();
        noisy.dedup();
        for id in noisy {
            self.fields[id as usize].noise += 1;
        }
        if signature.is_empty() {
            return;
        }
        if let Some(count) = self.signatures.get_mut(signature.as_slice()) {
            *count += 1;
        } else if self.signatures.len() < MAX_SIGNATURES
            && self.signature_fields + signature.len() <= MAX_SIGNATURE_FIELDS
        {
            self.signature_fields += signature.len();
            self.signatures.insert(signature.into_boxed_slice(), 1);
        } else {
            self.overflow += 1;
            for id in signature {
                *self.overflow_fields.entry(id).or_default() += 1;
            }
        }
    }

    /// Records a request not compared because a body was larger than `maxBodyBytes`.
    pub fn record_skipped(&mut self) {
        self.counts.received += 1;
        self.counts.skipped += 1;
    }

    /// Records a request dropped because too many were in flight.
    pub fn record_dropped(&mut self) {
        self.counts.received += 1;
        self.counts.dropped += 1;
    }

    /// Records a request not compared because a stable instance gave no answer (so there is nothing to
    /// compare against, or no measure of the noise).
    pub fn record_unanswered(&mut self) {
        self.counts.received += 1;
        self.counts.unanswered += 1;
    }

    /// Records a request refused because its method is not shadowed.
    pub fn record_refused(&mut self) {
        self.counts.received += 1;
        self.counts.refused += 1;
    }

    /// The index of a field, registering it if there is room; otherwise [`OTHER_FIELDS`]'s.
    fn field_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        // One slot is kept for OTHER_FIELDS itself.
        let name = if self.fields.len() + 1 < MAX_FIELDS && self.name_bytes + name.len() <= MAX_FIELD_NAME_BYTES {
            name
        } else {
            OTHER_FIELDS
        };
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = u32::try_from(self.fields.len()).unwrap_or(u32::MAX);
        self.name_bytes += name.len();
        self.index.insert(name.to_owned(), id);
        self.fields.push(FieldCounts {
            name: name.to_owned(),
            candidate: 0,
            noise: 0,
            examples: Vec::new(),
        });
        id
    }

    /// The report so far.
    pub fn report(&self) -> DiffReport {
        let compared = self.counts.compared;
        let real: Vec<bool> = self
            .fields
            .iter()
            .map(|field| is_real(field.candidate, field.noise, compared, &self.noise))
            .collect();
        let kept: u64 = self
            .signatures
            .iter()
            .filter(|(signature, _)| signature.iter().any(|&id| real[id as usize]))
            .map(|(_, count)| count)
            .sum();
        let overflowed: u64 = self
            .overflow_fields
            .iter()
            .filter(|&(&id, _)| real[id as usize])
            .map(|(_, count)| count)
            .sum();
        let with_real_difference = kept + overflowed.min(self.overflow);
        let mut fields: Vec<FieldDiff> = self
            .fields
            .iter()
            .zip(&real)
            .map(|(field, &real)| FieldDiff {
                field: field.name.clone(),
                candidate_rate: percent(field.candidate, compared),
                noise_rate: percent(field.noise, compared),
                real,
                examples: field.examples.clone(),
            })
            .collect();
        fields.sort_by(|left, right| {
            right
                .real
                .cmp(&left.real)
                .then(right.candidate_rate.total_cmp(&left.candidate_rate))
                .then_with(|| left.field.cmp(&right.field))
        });
        DiffReport {
            received: self.counts.received,
            compared,
            with_real_difference,
            diff_rate: percent(with_real_difference, compared),
            skipped: self.counts.skipped,
            dropped: self.counts.dropped,
            unanswered: self.counts.unanswered,
            refused: self.counts.refused,
            fields,
        }
    }
}

/// Whether a field whose candidate differed on `candidate` of `compared` requests, and the secondary on
/// `noise`, differs for real. Evaluated on the counts rather than on rounded rates, so that a rate exactly
/// at a margin is not real:
/// `candidate_rate − noise_rate > absolute` ⇔ `100·(candidate − noise) > absolute·compared`, and
/// `candidate_rate > noise_rate·(1 + relative/100)` ⇔ `100·candidate > noise·(100 + relative)`.
fn is_real(candidate: u64, noise: u64, compared: u64, margin: &NoiseMargin) -> bool {
    let (candidate, noise, compared) = (candidate as f64, noise as f64, compared as f64);
    100.0 * (candidate - noise) > margin.absolute * compared && 100.0 * candidate > noise * (100.0 + margin.relative)
}

fn percent(count: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { count as f64 * 100.0 / of as f64 }
}

/// What the shadow stage saw: the rate of requests with a real difference, and each field that differed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DiffReport {
    /// Requests the shadow listener received.
    pub received: u64,
    /// Requests answered by the primary, the secondary and the candidate (or left unanswered by the
    /// candidate, which is a difference in `status`) and compared.
    pub compared: u64,
    /// Compared requests on which the candidate differed in at least one real field.
    pub with_real_difference: u64,
    /// `with_real_difference` in percent of `compared`.
    pub diff_rate: f64,
    /// Requests not compared because a body was larger than `maxBodyBytes`.
    pub skipped: u64,
    /// Requests dropped because too many were in flight.
    pub dropped: u64,
    /// Requests not compared because a stable instance did not answer.
    pub unanswered: u64,
    /// Requests refused because their method is not shadowed.
    pub refused: u64,
    /// Every field that differed, real ones first, then by candidate rate.
    pub fields: Vec<FieldDiff>,
}

/// One field that differed on some request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    /// The field (`status`, `headers.etag`, `$.items[2].id`, `body`).
    pub field: String,
    /// Percent of compared requests where the candidate's value differed from the primary's.
    pub candidate_rate: f64,
    /// Percent of compared requests where the secondary's value differed from the primary's.
    pub noise_rate: f64,
    /// Whether the candidate differs more than the noise, by both margins.
    pub real: bool,
    /// Up to three requests where the candidate differed.
    pub examples: Vec<Example>,
}

/// One request where the candidate's value differed from the primary's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    /// Method and path (`GET /items/1`); the query is left out, as it may carry credentials.
    pub request: String,
    /// The primary's value.
    pub primary: String,
    /// The candidate's value.
    pub candidate: String,
}

/// The shadow stage's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum ShadowVerdict {
    /// The rate of requests with a real difference is within the limit.
    Pass,
    /// Too many requests had a real difference.
    Fail {
        /// What differed, for the rollout's events.
        summary: String,
    },
    /// No request was compared, so there is no evidence either way.
    NoTraffic,
}

impl DiffReport {
    /// Pass when the rate of requests with a real difference is at most `max_diff_rate` percent.
    pub fn verdict(&self, max_diff_rate: f64) -> ShadowVerdict {
        if self.compared == 0 {
            ShadowVerdict::NoTraffic
        } else if self.diff_rate > max_diff_rate {
            ShadowVerdict::Fail {
                summary: format!("{} (max {max_diff_rate}%)", self.summary()),
            }
        } else {
            ShadowVerdict::Pass
        }
    }

    /// One line for people: the rate, the real fields and the noisy ones.
    pub fn summary(&self) -> String {
        let mut text = if self.compared == 0 {
            "no request compared".to_owned()
        } else {
            format!(
                "{} of {} compared requests ({:.2}%) differ for real",
                self.with_real_difference, self.compared, self.diff_rate
            )
        };
        let real: Vec<&FieldDiff> = self.fields.iter().filter(|field| field.real).collect();
        if !real.is_empty() {
            text.push_str(": ");
            list(&mut text, &real, |field| {
                format!(
                    "{} (candidate {:.2}%, stables {:.2}%)",
                    field.field, field.candidate_rate, field.noise_rate
                )
            });
        }
        let noise: Vec<&FieldDiff> = self.fields.iter().filter(|field| !field.real).collect();
        if !noise.is_empty() {
            text.push_str("; noise: ");
            list(&mut text, &noise, |field| field.field.clone());
        }
        let not_compared = [
            (self.skipped, "skipped (body over maxBodyBytes)"),
            (self.dropped, "dropped (too many in flight)"),
            (self.unanswered, "unanswered by stable"),
            (self.refused, "refused (method not shadowed)"),
        ];
        for (count, what) in not_compared {
            if count > 0 {
                let _ = write!(text, "; {count} {what}");
            }
        }
        text
    }
}

fn list(text: &mut String, fields: &[&FieldDiff], describe: impl Fn(&FieldDiff) -> String) {
    let shown: Vec<String> = fields
        .iter()
        .take(SUMMARY_FIELDS)
        .map(|field| describe(field))
        .collect();
    text.push_str(&shown.join(", "));
    if fields.len() > SUMMARY_FIELDS {
        let _ = write!(text, " and {} more", fields.len() - SUMMARY_FIELDS);
    }
}

#[cfg(test)]
mod tests;
