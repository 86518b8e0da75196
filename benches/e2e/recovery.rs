//! Recovery under live traffic: how long a backlog takes to drain while new
//! writes keep arriving at half of direct capacity.

use super::*;

pub async fn run(rig: &Rig, report: &mut Report, set: &Settings) {
    let Rig {
        db,
        engine,
        http,
        direct,
        ..
    } = rig;
    println!(
        "\nrecovery under live traffic (backlog {}, new writes at half of direct capacity)",
        set.backlog
    );
    let direct8 = report
        .figures
        .iter()
        .find(|f| f.what == "direct MariaDB writes/s @8")
        .map(|f| f.median());
    let direct8 = match direct8 {
        Some(d) => d,
        None => load(direct, 8, set.secs, 0.0).await.per_sec(),
    };
    let mut recovery = Vec::new();
    for _ in 0..set.runs {
        let hold = freeze_and_queue(db, engine, http, set.backlog).await;
        let live = Target::Http {
            base: http.clone(),
            async_ack: false,
        };
        let stop = Arc::new(AtomicBool::new(false));
        hold.release().await.expect("unfreeze");
        let t = Instant::now();
        let traffic = {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    load(&live, 8, 1.0, direct8 / 2.0).await;
                }
            })
        };
        wait_for("back to direct", Duration::from_secs(1800), || {
            engine.mode() == sluice::engine::mode::Mode::Direct
        })
        .await;
        recovery.push(t.elapsed().as_secs_f64());
        stop.store(true, Ordering::SeqCst);
        traffic.await.unwrap();
    }
    report.add(
        "recovery under live traffic",
        "seconds until empty and direct",
        "s",
        recovery,
    );
}
