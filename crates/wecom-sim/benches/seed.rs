//! Prints how long seeding a 100,000-member corp takes (the budget: under 5 s).
//! Run with `cargo bench -p wecom-sim --bench seed` (release profile).

use std::time::Instant;

use wecom_sim::directory::seed::{SeedSpec, seed};

fn main() {
    let spec = SeedSpec {
        users: 100_000,
        departments: None,
        tags: None,
        seed: 42,
    };
    let mut best = f64::MAX;
    for run in 1..=3 {
        let started = Instant::now();
        let dir = seed("Bench Corp", &spec);
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        let (departments, users, tags) = dir.counts();
        println!(
            "run {run}: seeded {users} users, {departments} departments, {tags} tags in {secs:.3} s"
        );
    }
    println!("best: {best:.3} s (budget 5 s)");
}
