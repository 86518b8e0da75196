//! The per-write cost of each path, counted under callgrind on this
//! release build (`cargo bench --bench cost`): instructions and allocations
//! per write against the budgets the test `cost_budget` enforces. Exits
//! non-zero when a path is over. `SLUICE_COST_KEEP=1` keeps the callgrind
//! dumps, for `callgrind_annotate`; `SLUICE_COST_WRITES` sets the load.

use sluice::testkit::cost::{measure, table, Budget, Load};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut load = Load::default();
    if let Some(n) = std::env::var("SLUICE_COST_WRITES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        load.writes = n;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sluice"));
    let costs = match rt.block_on(measure(binary, load)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cost: {e}");
            std::process::exit(2);
        }
    };
    print!("{}", table(&costs));
    let over: Vec<String> = costs
        .iter()
        .filter_map(|c| Budget::of(c.path).check(c))
        .collect();
    if !over.is_empty() {
        eprintln!("over budget:\n{}", over.join("\n"));
        std::process::exit(1);
    }
}
