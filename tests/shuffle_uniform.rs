//! The epoch shuffle is a uniform permutation (Fisher–Yates), not only the n-cycles that
//! Sattolo's variant draws: every order of 3 examples comes up equally often, each example leads
//! an epoch equally often, and orders with fixed points occur. Seeds are fixed: the counts are
//! the same every run, and the bounds hold them more than 5 standard deviations from failing.

use batchscope::config::Shuffle;
use batchscope::data::{permutation, BatchOrder};

/// Each of the 6 orders of 3 examples in 6000 epochs: 1000 ± 150 (sd 29).
#[test]
fn every_order_of_three_examples_is_equally_likely() {
    let mut order = BatchOrder::new(Shuffle::Epoch, false, 11, 3, None);
    let mut counts = std::collections::BTreeMap::<Vec<u32>, usize>::new();
    for epoch in 0..6000 {
        *counts.entry(order.epoch_order(epoch).to_vec()).or_default() += 1;
    }
    println!("orders of 3 over 6000 epochs: {counts:?}");
    assert_eq!(counts.len(), 6, "all 3! orders occur: {counts:?}");
    for (p, &c) in &counts {
        assert!((850..=1150).contains(&c), "order {p:?} drawn {c} times, not 1000 ± 150");
    }
    // The identity, an order with every example a fixed point, among them.
    assert!(counts.get(&vec![0, 1, 2]).is_some_and(|&c| c > 0));
}

/// The first example of 8 over 8000 permutations (seeds and epochs alike): each value
/// 1000 ± 150 (sd 30) times, 0 included; about 1 − 1/e of them have a fixed point.
#[test]
fn each_example_leads_an_epoch_equally_often() {
    let mut first = [0usize; 8];
    let mut with_fixed_point = 0usize;
    for k in 0..8000u64 {
        let p = permutation(k % 16, k / 16, 8);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..8).collect::<Vec<u32>>(), "a permutation of 0..8: {p:?}");
        first[p[0] as usize] += 1;
        with_fixed_point += usize::from(p.iter().enumerate().any(|(i, &v)| v as usize == i));
    }
    println!("first example counts {first:?}; {with_fixed_point} of 8000 with a fixed point");
    for (v, &c) in first.iter().enumerate() {
        assert!((850..=1150).contains(&c), "example {v} first {c} times, not 1000 ± 150");
    }
    // P(some fixed point) = 1 − Σ (−1)^k / k! ≈ 0.632 for n = 8: 5057 ± 43.
    assert!((4800..=5300).contains(&with_fixed_point), "{with_fixed_point} with a fixed point");
}
