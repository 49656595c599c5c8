//! `/api/items/{id}`: a JSON answer with one field a candidate can really change (`price`) and two that differ
//! between any two answers of the same revision (`requestId`, `servedAt`), the noise a shadow comparison has to
//! tell apart from a real difference.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::latency::splitmix64;

/// The path prefix of the item endpoint.
const ITEMS_PREFIX: &str = "/api/items/";
/// Baseline prices run from 5.00 to 204.99 EUR, in cents.
const LOWEST_PRICE_CENTS: u64 = 500;
const PRICE_SPREAD_CENTS: u64 = 20_000;

/// Which item, if any, a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemPath {
    /// Not the item endpoint: the greeting answers it.
    Other,
    /// `/api/items/{id}` with a whole-number id.
    Item(u64),
    /// `/api/items/...` with something that is not an id.
    BadId,
}

impl ItemPath {
    /// Reads a request path (without its query).
    pub(crate) fn parse(path: &str) -> Self {
        match path.strip_prefix(ITEMS_PREFIX) {
            None => Self::Other,
            Some(id) => id.parse().map_or(Self::BadId, Self::Item),
        }
    }
}

/// The JSON body of a request for an id that is not a whole number.
pub(crate) const BAD_ID_BODY: &str = r#"{"error":"item ids are whole numbers"}"#;

/// Renders items: the price from the id and the configured change, the noise fresh for every answer.
#[derive(Debug)]
pub(crate) struct ItemCatalogue {
    /// Price multiplier in hundredths of a percent: 10_000 is the baseline, 10_500 is 5% more.
    price_basis_points: u64,
    /// Random per process, so two instances of one revision never share request ids.
    id_seeds: [u64; 2],
    answers: AtomicU64,
    last_served_at: AtomicU64,
}

impl ItemCatalogue {
    /// `price_change` is a percentage above -100, already checked by the configuration.
    pub(crate) fn new(price_change: f64) -> Self {
        // Rounded to a hundredth of a percent; the configuration keeps the value finite and above -100.
        let price_basis_points = (10_000.0 + price_change * 100.0).round().max(0.0) as u64;
        let random = RandomState::new();
        Self {
            price_basis_points,
            id_seeds: [random.hash_one(1u8), random.hash_one(2u8)],
            answers: AtomicU64::new(0),
            last_served_at: AtomicU64::new(0),
        }
    }

    /// The price of item `id` in cents, the same for every answer of a revision.
    pub(crate) fn price_cents(&self, id: u64) -> u64 {
        let baseline = LOWEST_PRICE_CENTS + splitmix64(id) % PRICE_SPREAD_CENTS;
        // At most 20_499 cents times a multiplier that fits u64, so u128 cannot overflow; rounded half up.
        let changed = (u128::from(baseline) * u128::from(self.price_basis_points) + 5_000) / 10_000;
        u64::try_from(changed).unwrap_or(u64::MAX)
    }

    /// The JSON body for item `id`.
    pub(crate) fn render(&self, id: u64) -> String {
        let cents = self.price_cents(id);
        format!(
            r#"{{"id":{id},"name":"item-{id}","price":{}.{:02},"currency":"EUR","requestId":"{}","servedAt":{}}}"#,
            cents / 100,
            cents % 100,
            self.next_request_id(),
            self.next_served_at(),
        )
    }

    /// 128 bits of hex, distinct for every answer of this process: SplitMix64's finaliser is a bijection, so
    /// distinct counters give distinct ids.
    fn next_request_id(&self) -> String {
        let n = self.answers.fetch_add(1, Ordering::Relaxed);
        let [high, low] = self.id_seeds.map(|seed| splitmix64(seed.wrapping_add(n)));
        format!("{high:016x}{low:016x}")
    }

    /// Unix time in nanoseconds, strictly increasing within the process so that no two answers share it even
    /// when the clock's resolution is coarse.
    fn next_served_at(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
        let mut last = self.last_served_at.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self
                .last_served_at
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_items_bad_ids_or_other() {
        let cases = [
            ("/api/items/42", ItemPath::Item(42)),
            ("/api/items/0", ItemPath::Item(0)),
            ("/api/items/abc", ItemPath::BadId),
            ("/api/items/", ItemPath::BadId),
            ("/api/items/4/2", ItemPath::BadId),
            ("/api/items", ItemPath::Other),
            ("/hello", ItemPath::Other),
        ];
        for (path, expected) in cases {
            assert_eq!(ItemPath::parse(path), expected, "{path}");
        }
    }

    #[test]
    fn the_same_item_always_has_the_same_price_and_different_items_usually_not() {
        let catalogue = ItemCatalogue::new(0.0);
        let another = ItemCatalogue::new(0.0);
        assert_eq!(catalogue.price_cents(7), another.price_cents(7));
        let prices: std::collections::BTreeSet<u64> = (0..100).map(|id| catalogue.price_cents(id)).collect();
        assert!(prices.len() > 90, "{} distinct prices of 100", prices.len());
        assert!(prices.iter().all(|cents| (500..20_500).contains(cents)));
    }

    #[test]
    fn a_price_change_is_applied_to_every_item_rounded_to_the_cent() {
        let baseline = ItemCatalogue::new(0.0);
        let dearer = ItemCatalogue::new(10.0);
        let cheaper = ItemCatalogue::new(-50.0);
        for id in 0..50 {
            let cents = baseline.price_cents(id);
            assert_eq!(dearer.price_cents(id), (cents * 11 + 5) / 10, "item {id}");
            assert_eq!(cheaper.price_cents(id), cents.div_ceil(2), "item {id}");
        }
    }

    #[test]
    fn two_answers_for_one_item_differ_only_in_request_id_and_served_at() {
        let catalogue = ItemCatalogue::new(0.0);
        let first = catalogue.render(3);
        let second = catalogue.render(3);
        let cents = catalogue.price_cents(3);
        let stable_part = format!(
            r#"{{"id":3,"name":"item-3","price":{}.{:02},"currency":"EUR","requestId":""#,
            cents / 100,
            cents % 100
        );
        assert!(first.starts_with(&stable_part), "{first}");
        assert!(second.starts_with(&stable_part), "{second}");
        let noise = |body: &str| body[stable_part.len()..].to_owned();
        let (first_id, first_time) = noise(&first).split_once(r#"","servedAt":"#).map(own).unwrap();
        let (second_id, second_time) = noise(&second).split_once(r#"","servedAt":"#).map(own).unwrap();
        assert_eq!(first_id.len(), 32);
        assert!(first_id.chars().all(|c| c.is_ascii_hexdigit()), "{first_id}");
        assert_ne!(first_id, second_id);
        let time = |text: String| text.trim_end_matches('}').parse::<u64>().unwrap();
        assert!(time(second_time) > time(first_time));
    }

    #[test]
    fn two_instances_of_a_revision_never_share_request_ids() {
        let (one, two) = (ItemCatalogue::new(0.0), ItemCatalogue::new(0.0));
        let ids: std::collections::HashSet<String> = (0..100)
            .flat_map(|_| [one.next_request_id(), two.next_request_id()])
            .collect();
        assert_eq!(ids.len(), 200);
    }

    fn own((a, b): (&str, &str)) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }
}
