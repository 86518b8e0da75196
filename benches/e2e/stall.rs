//! Absorbing a stall: durable acknowledgements per second while MariaDB's
//! writes are frozen, through either front, against direct MariaDB's
//! healthy rate (and the HAProxy hop's, which has nothing to absorb with).

use super::*;

pub async fn run(rig: &Rig, report: &mut Report, set: &Settings) {
    let Rig {
        db,
        engine,
        http,
        via_front,
        ..
    } = rig;
    println!("\nabsorbing a stall (MariaDB frozen with FLUSH TABLES WITH READ LOCK, 32 clients)");
    let fronts = [
        (
            "HTTP front",
            Target::Http {
                base: http.clone(),
                async_ack: true,
            },
        ),
        ("MySQL front", via_front.clone()),
    ];
    for (front, target) in fronts {
        let mut absorbed = Vec::new();
        let mut per_flush = Vec::new();
        let mut cpu_per_ack = Vec::new();
        for _ in 0..set.runs {
            let hold = db.freeze_writes().await.expect("freeze");
            // Until sluice notices the freeze and buffers.
            load(&target, 32, 1.5, 0.0).await;
            wait_for("buffering", Duration::from_secs(10), || {
                engine.mode() == sluice::engine::mode::Mode::Buffering
            })
            .await;
            let flushes0 = metric(engine, "sluice_store_flushes_total");
            let cpu0 = cpu_secs(std::process::id());
            let l = load(&target, 32, set.secs, 0.0).await;
            absorbed.push(l.per_sec());
            let acks = l.ops.max(1) as f64;
            per_flush
                .push(acks / (metric(engine, "sluice_store_flushes_total") - flushes0).max(1.0));
            cpu_per_ack.push((cpu_secs(std::process::id()) - cpu0) * 1e6 / acks);
            hold.release().await.expect("unfreeze");
            wait_for("drained", Duration::from_secs(600), || {
                engine.mode() == sluice::engine::mode::Mode::Direct
            })
            .await;
        }
        let what = format!("{front}: durable acks/s, MariaDB frozen @32");
        report.add("absorbing a stall", &what, "writes/s", absorbed);
        report.add(
            "absorbing a stall",
            &format!("{front}: acknowledged writes per store flush"),
            "writes",
            per_flush,
        );
        report.add(
            "absorbing a stall",
            &format!("{front}: client + sluice CPU per acknowledgement"),
            "µs",
            cpu_per_ack,
        );
        report.against(&what, "direct MariaDB writes/s @32");
        report.against(&what, "HAProxy TCP hop writes/s @32");
    }
}
