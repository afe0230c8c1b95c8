//! Prints how long seeding a 100,000-member corp takes (the budget: under 5 s).
//! Run with `cargo bench -p wecom-sim --bench seed` (release profile).
//!
//! It goes through the public surface: a fresh in-process simulator per run, whose
//! [`Sim::create_corp`](wecom_sim::Sim::create_corp) seeds the corp (no callback pushed).

use std::time::Instant;

use wecom_sim::{CorpSpec, PushOpts, SimConfig, build};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = CorpSpec {
        name: Some("Bench Corp".to_owned()),
        users: Some(100_000),
        seed: Some(42),
        ..CorpSpec::default()
    };
    let no_push = PushOpts {
        push: false,
        wait: false,
    };
    let mut best = f64::MAX;
    for run in 1..=3 {
        let app = build(SimConfig {
            addr: ([127, 0, 0, 1], 0).into(),
            ..SimConfig::default()
        })?;
        let sim = app.sim();
        let started = Instant::now();
        let (corp, _) = sim.create_corp(&spec, no_push)?;
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "run {run}: seeded {} users, {} departments, {} tags in {secs:.3} s",
            corp.users, corp.departments, corp.tags
        );
    }
    println!("best: {best:.3} s (budget 5 s)");
    Ok(())
}
