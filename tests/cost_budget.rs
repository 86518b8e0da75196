//! The per-write cost budget: sluice's release binary under callgrind,
//! counted per write on each path (MySQL front, HTTP front, queued
//! acknowledgement, drain), against the budgets in `sluice::testkit::cost`.
//! Instructions are exact, so this checks cost without timing anything.
//! `cargo bench --bench cost` prints the same table on a larger load.

use sluice::testkit::cost::{measure, release_binary, table, Budget, Load};

#[test]
fn every_path_stays_within_its_per_write_budget() {
    let binary = release_binary().expect("the release binary builds");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = Load {
        writes: 400,
        warmup: 50,
        queued_clients: 8,
    };
    let costs = rt
        .block_on(measure(&binary, load))
        .expect("the paths are counted");
    println!("{}", table(&costs));
    let over: Vec<String> = costs
        .iter()
        .filter_map(|c| Budget::of(c.path).check(c))
        .collect();
    assert!(
        over.is_empty(),
        "over budget (find where with `cargo bench --bench cost`, then callgrind_annotate):\n{}\n\n{}",
        over.join("\n"),
        table(&costs)
    );
}
