//! The classification: companies ranked by revenue and cut into A, B and C at the
//! thresholds, the Pareto curve, and the shift guard's count of companies that changed class.

use rust_decimal::Decimal;

use super::revenue::{share, Money};
use super::settings::THRESHOLD_DECIMALS;

/// An ABC class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AbcClass {
    /// The few customers that make most of the revenue.
    A,
    /// The middle.
    B,
    /// The long tail.
    C,
}

impl AbcClass {
    /// "A", "B" or "C".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// Parses "A", "B" or "C".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            "C" => Some(Self::C),
            _ => None,
        }
    }
}

/// One company's revenue in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyRevenue<'a> {
    /// The company's external id.
    pub external_id: &'a str,
    /// Revenue; zero or negative means no revenue.
    pub revenue: Money,
}

/// Where a company with revenue stands in the ranking its class was cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Its rank among the companies by revenue: 1 = highest (ties by external id).
    pub rank: u32,
    /// The cumulative share of revenue of the companies ranked before it, in percent to
    /// two places (see [`share`]): what the A/B/C cut compares with the thresholds
    /// (the comparison itself is exact).
    pub share_before: Decimal,
}

/// The outcome of classifying a set of companies.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Class of each company, in the order of the input (None without revenue).
    pub classes: Vec<Option<AbcClass>>,
    /// Rank and cumulative share before each company, in the order of the input (None
    /// without revenue).
    pub standings: Vec<Option<Standing>>,
    /// Per class A, B, C: companies and revenue.
    pub summary: [(AbcClass, u64, Money); 3],
    /// Companies without revenue in the window.
    pub unclassified: u64,
    /// The sum of the positive revenues (100 % of the curve).
    pub total: Money,
    /// The Pareto curve: (percent of companies, cumulative percent of revenue).
    pub curve: Vec<(Decimal, Decimal)>,
}

/// Points on the curve: one per company up to this many companies, else one per
/// percent of companies plus the class boundaries.
const CURVE_POINTS: usize = 100;

/// Classifies companies by revenue: sorted by revenue descending (ties by external id),
/// a company is A while the cumulative share *before* it is below `a` percent, B below
/// `b`, else C — so the company that crosses a boundary takes the class it starts in.
/// Companies with no positive revenue get no class. The input order does not matter.
pub fn classify(companies: &[CompanyRevenue<'_>], a: Decimal, b: Decimal) -> Classification {
    // Positions, not copies: 200 000 companies are ranked without cloning their ids.
    let mut ranked: Vec<usize> = (0..companies.len())
        .filter(|&i| companies[i].revenue.is_positive())
        .collect();
    ranked.sort_unstable_by(|&x, &y| {
        let (x, y) = (&companies[x], &companies[y]);
        y.revenue
            .cmp(&x.revenue)
            .then_with(|| x.external_id.cmp(y.external_id))
    });
    let total: i128 = ranked
        .iter()
        .map(|&i| companies[i].revenue.ten_thousandths())
        .sum();
    // cum * 100 < a * total, with a's two decimal places made integer.
    let scale = |t: Decimal| -> i128 {
        let mut t = t;
        t.rescale(THRESHOLD_DECIMALS);
        t.mantissa()
    };
    let (a_s, b_s) = (scale(a), scale(b));
    let hundred_s: i128 = 100 * 10i128.pow(THRESHOLD_DECIMALS);
    let below = |cum: i128, t: i128| -> bool {
        // cum / total < t / hundred_s  ⇔  cum * hundred_s < t * total (all non-negative).
        match (cum.checked_mul(hundred_s), t.checked_mul(total)) {
            (Some(l), Some(r)) => l < r,
            // Astronomic totals: compare in floating point (never reached with i64 rows).
            _ => (cum as f64) / (total as f64) < (t as f64) / (hundred_s as f64),
        }
    };
    let mut classes = vec![None; companies.len()];
    let mut standings = vec![None; companies.len()];
    let mut summary = [
        (AbcClass::A, 0u64, Money::ZERO),
        (AbcClass::B, 0, Money::ZERO),
        (AbcClass::C, 0, Money::ZERO),
    ];
    let n = ranked.len();
    let mut curve = vec![(Decimal::ZERO, Decimal::ZERO)];
    let mut cum: i128 = 0;
    let mut prev_class = None;
    for (i, &at) in ranked.iter().enumerate() {
        let c = &companies[at];
        let class = if below(cum, a_s) {
            AbcClass::A
        } else if below(cum, b_s) {
            AbcClass::B
        } else {
            AbcClass::C
        };
        // The curve keeps the boundary where a class ends.
        if prev_class.is_some_and(|p| p != class) && n > CURVE_POINTS {
            curve.push((share(i as i128, n as i128), share(cum, total)));
        }
        prev_class = Some(class);
        standings[at] = Some(Standing {
            rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
            share_before: share(cum, total),
        });
        cum += c.revenue.ten_thousandths();
        let slot = &mut summary[class as usize];
        slot.1 += 1;
        slot.2 += c.revenue;
        classes[at] = Some(class);
        let k = i + 1;
        // Past CURVE_POINTS companies, a point where the percent of companies reaches
        // the next whole number (the last company always does).
        let on_percent = n <= CURVE_POINTS || k * CURVE_POINTS / n != i * CURVE_POINTS / n;
        if on_percent {
            curve.push((share(k as i128, n as i128), share(cum, total)));
        }
    }
    curve.dedup_by(|x, y| x.0 == y.0);
    Classification {
        classes,
        standings,
        summary,
        unclassified: (companies.len() - n) as u64,
        total: Money::from_ten_thousandths(total),
        curve,
    }
}

/// How many of the companies classified before changed class (gaining or losing one
/// included), out of how many were classified before or now: each pair is a company's
/// (stored class, new class), for the companies that have stored categories.
pub fn shift(pairs: impl IntoIterator<Item = (Option<AbcClass>, Option<AbcClass>)>) -> (u64, u64) {
    let (mut changed, mut base) = (0, 0);
    for (old, new) in pairs {
        if old.is_none() && new.is_none() {
            continue;
        }
        base += 1;
        changed += u64::from(old != new);
    }
    (changed, base)
}

/// Whether `changed` of `base` is more than `percent`.
pub fn shift_exceeds(changed: u64, base: u64, percent: Decimal) -> bool {
    base > 0 && Decimal::from(changed) * Decimal::ONE_HUNDRED > percent * Decimal::from(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn rev<'a>(list: &[(&'a str, i64)]) -> Vec<CompanyRevenue<'a>> {
        list.iter()
            .map(|(id, r)| CompanyRevenue {
                external_id: id,
                revenue: Money::from_ten_thousandths(i128::from(*r) * 10_000),
            })
            .collect()
    }

    fn classes_of(list: &[(&str, i64)]) -> Vec<(String, Option<AbcClass>)> {
        let c = classify(&rev(list), Decimal::from(80), Decimal::from(95));
        list.iter()
            .zip(&c.classes)
            .map(|((id, _), class)| ((*id).to_owned(), *class))
            .collect()
    }

    fn expect(list: &[(&str, i64)], want: &[Option<AbcClass>]) {
        let got: Vec<Option<AbcClass>> = classes_of(list).into_iter().map(|x| x.1).collect();
        assert_eq!(got, want, "classes of {list:?}");
    }

    use AbcClass::{A, B, C};

    #[test]
    fn a_company_ending_exactly_on_80_percent_is_a_and_the_next_starts_b() {
        // Cumulative before each: 0, 50, 80, 95.
        expect(
            &[("1", 50), ("2", 30), ("3", 15), ("4", 5)],
            &[Some(A), Some(A), Some(B), Some(C)],
        );
    }

    #[test]
    fn the_company_crossing_a_boundary_takes_the_class_it_starts_in() {
        // 70 starts at 0 (A); 20 starts at 70 % (A, crosses 80); 6 starts at 90 % (B,
        // crosses 95); 4 starts at 96 % (C).
        expect(
            &[("a", 70), ("b", 20), ("c", 6), ("d", 4)],
            &[Some(A), Some(A), Some(B), Some(C)],
        );
    }

    #[test]
    fn ties_are_ordered_by_external_id() {
        // Five equal companies: cumulative before 0, 20, 40, 60, 80 → A A A A B; the
        // one ranked last by id is the B.
        let c = classes_of(&[("e", 10), ("c", 10), ("a", 10), ("d", 10), ("b", 10)]);
        let b: Vec<_> = c.iter().filter(|x| x.1 == Some(B)).collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, "e");
        assert!(c.iter().all(|x| x.1.is_some()));
    }

    #[test]
    fn all_revenue_in_one_company_makes_it_the_only_class() {
        expect(
            &[("big", 1000), ("z1", 0), ("z2", 0)],
            &[Some(A), None, None],
        );
    }

    #[test]
    fn all_equal_twenty_companies() {
        // Each is 5 %: before-shares 0..95 step 5; A for < 80 (16 companies), B for 80,
        // 85, 90 (3), C for 95 (1).
        let list: Vec<(String, i64)> = (0..20).map(|i| (format!("{i:02}"), 7)).collect();
        let refs: Vec<(&str, i64)> = list.iter().map(|(s, r)| (s.as_str(), *r)).collect();
        let c = classify(&rev(&refs), Decimal::from(80), Decimal::from(95));
        assert_eq!(c.summary[0].1, 16);
        assert_eq!(c.summary[1].1, 3);
        assert_eq!(c.summary[2].1, 1);
        assert_eq!(c.classes[19], Some(C));
    }

    #[test]
    fn zero_and_negative_revenue_get_no_class_and_do_not_count_in_the_total() {
        let list = [("a", 85), ("b", 15), ("zero", 0), ("credit", -30)];
        expect(&list, &[Some(A), Some(B), None, None]);
        let c = classify(&rev(&list), Decimal::from(80), Decimal::from(95));
        assert_eq!(c.total, Money::from_ten_thousandths(100 * 10_000));
        assert_eq!(c.unclassified, 2);
    }

    #[test]
    fn a_single_company_is_a() {
        expect(&[("only", 1)], &[Some(A)]);
        let c = classify(&rev(&[("only", 1)]), Decimal::from(80), Decimal::from(95));
        assert_eq!(
            c.curve,
            vec![
                (Decimal::ZERO, Decimal::ZERO),
                (Decimal::ONE_HUNDRED, Decimal::ONE_HUNDRED)
            ]
        );
    }

    #[test]
    fn thresholds_with_decimals_are_exact() {
        let c = classify(
            &rev(&[("1", 805), ("2", 195)]),
            Decimal::new(805, 1),
            Decimal::from(95),
        );
        // "2" starts at exactly 80.5 %: not below A.
        assert_eq!(c.classes[1], Some(B));
    }

    #[test]
    fn no_companies_no_classes() {
        let c = classify(&[], Decimal::from(80), Decimal::from(95));
        assert!(c.classes.is_empty());
        let c = classify(&rev(&[("z", 0)]), Decimal::from(80), Decimal::from(95));
        assert_eq!(c.classes, vec![None]);
        assert_eq!(c.total, Money::ZERO);
        assert_eq!(c.curve, vec![(Decimal::ZERO, Decimal::ZERO)]);
    }

    #[test]
    fn a_large_curve_has_a_point_per_percent_and_the_boundaries() {
        let ids: Vec<String> = (0..1000).map(|i| format!("{i:04}")).collect();
        let list: Vec<CompanyRevenue> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| CompanyRevenue {
                external_id: id,
                revenue: Money::from_ten_thousandths(1000 - i as i128),
            })
            .collect();
        let c = classify(&list, Decimal::from(80), Decimal::from(95));
        assert!(
            c.curve.len() >= 101 && c.curve.len() <= 103,
            "{}",
            c.curve.len()
        );
        assert_eq!(c.curve.last().unwrap().0, Decimal::ONE_HUNDRED);
        assert_eq!(c.curve.last().unwrap().1, Decimal::ONE_HUNDRED);
        assert!(c
            .curve
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn each_company_has_its_rank_and_the_share_its_class_was_cut_at() {
        // Ranked 50, 30, 15, 5: cumulative before 0, 50, 80, 95 % → A A B C.
        let list = rev(&[("4", 5), ("2", 30), ("none", 0), ("1", 50), ("3", 15)]);
        let c = classify(&list, Decimal::from(80), Decimal::from(95));
        let got: Vec<Option<(u32, Decimal, AbcClass)>> = c
            .standings
            .iter()
            .zip(&c.classes)
            .map(|(s, k)| s.map(|s| (s.rank, s.share_before, k.unwrap())))
            .collect();
        assert_eq!(
            got,
            vec![
                Some((4, Decimal::from(95), C)),
                Some((2, Decimal::from(50), A)),
                None,
                Some((1, Decimal::ZERO, A)),
                Some((3, Decimal::from(80), B)),
            ]
        );
        // Shares are shown to two places: 2 of 3 before is 66.67 %.
        let c = classify(
            &rev(&[("a", 1), ("b", 2)]),
            Decimal::from(80),
            Decimal::from(95),
        );
        assert_eq!(c.standings[0].unwrap().share_before, Decimal::new(6667, 2));
        assert_eq!(c.standings[1].unwrap().rank, 1);
    }

    #[test]
    fn the_shift_guard_counts_companies_classified_before() {
        // 1 stays A, 2 goes B→C, 3 stays without a class, 4 loses its class.
        let pairs = [
            (Some(A), Some(A)),
            (Some(B), Some(C)),
            (None, None),
            (Some(C), None),
        ];
        assert_eq!(shift(pairs), (2, 3));
        assert!(shift_exceeds(2, 3, Decimal::from(30)));
        assert!(!shift_exceeds(3, 10, Decimal::from(30)));
        assert!(shift_exceeds(4, 10, Decimal::from(30)));
        assert!(!shift_exceeds(0, 0, Decimal::from(30)));
    }

    fn companies() -> impl Strategy<Value = Vec<(String, i128)>> {
        prop::collection::vec((0u32..500, -1_000i64..1_000_000), 0..120).prop_map(|v| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|(id, _)| seen.insert(*id))
                .map(|(id, r)| (format!("c{id}"), i128::from(r)))
                .collect()
        })
    }

    fn borrowed(v: &[(String, i128)]) -> Vec<CompanyRevenue<'_>> {
        v.iter()
            .map(|(id, r)| CompanyRevenue {
                external_id: id,
                revenue: Money::from_ten_thousandths(*r),
            })
            .collect()
    }

    fn by_id(list: &[CompanyRevenue<'_>], c: &Classification) -> HashMap<String, Option<AbcClass>> {
        list.iter()
            .zip(&c.classes)
            .map(|(x, k)| (x.external_id.to_owned(), *k))
            .collect()
    }

    proptest! {
        #[test]
        fn more_revenue_never_gets_a_worse_class(owned in companies(), a in 1u32..98) {
            let list = borrowed(&owned);
            let b = a + 1 + (98 - a) / 2;
            let c = classify(&list, Decimal::from(a), Decimal::from(b));
            for (i, x) in list.iter().enumerate() {
                prop_assert_eq!(c.classes[i].is_some(), x.revenue.is_positive());
                for (j, y) in list.iter().enumerate() {
                    if x.revenue > y.revenue && y.revenue.is_positive() {
                        prop_assert!(c.classes[i] <= c.classes[j]);
                    }
                }
            }
        }

        #[test]
        fn revenue_shares_sum_to_100_percent(owned in companies()) {
            let list = borrowed(&owned);
            let c = classify(&list, Decimal::from(80), Decimal::from(95));
            let sum: Money = c.summary.iter().map(|s| s.2).sum();
            prop_assert_eq!(sum, c.total);
            let count: u64 = c.summary.iter().map(|s| s.1).sum();
            prop_assert_eq!(count + c.unclassified, list.len() as u64);
            if c.total.is_positive() {
                prop_assert_eq!(c.curve.last().copied(), Some((Decimal::ONE_HUNDRED, Decimal::ONE_HUNDRED)));
                let shares: Decimal = c.summary.iter().map(|s| s.2.share_of(c.total)).sum();
                // Each share is rounded to 0.01: the sum is 100 within rounding.
                prop_assert!((shares - Decimal::ONE_HUNDRED).abs() <= Decimal::new(2, 2));
            }
        }

        #[test]
        fn the_result_does_not_depend_on_input_order(owned in companies(), seed in any::<u64>()) {
            let list = borrowed(&owned);
            let c1 = classify(&list, Decimal::from(80), Decimal::from(95));
            let mut shuffled = list.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let c2 = classify(&shuffled, Decimal::from(80), Decimal::from(95));
            prop_assert_eq!(by_id(&list, &c1), by_id(&shuffled, &c2));
            prop_assert_eq!((c1.summary, c1.total, c1.unclassified), (c2.summary, c2.total, c2.unclassified));
            prop_assert_eq!(c1.curve, c2.curve);
        }
    }
}
