//! Drain speed: a queued backlog applied in order, against one-by-one
//! INSERTs and the 100-row INSERT ceiling.

use super::*;

pub async fn run(rig: &Rig, report: &mut Report, set: &Settings) {
    let Rig {
        db, engine, http, ..
    } = rig;
    println!(
        "\ndraining a backlog of {} queued single-row INSERTs",
        set.drain_rows
    );
    let mut drain = Vec::new();
    let mut in_batches = Vec::new();
    let mut batch_rows = Vec::new();
    for _ in 0..set.runs {
        let hold = freeze_and_queue(db, engine, http, set.drain_rows).await;
        let depth = engine.status().queue.depth;
        hold.release().await.expect("unfreeze");
        wait_for("draining", Duration::from_secs(30), || {
            engine.mode() != sluice::engine::mode::Mode::Buffering
        })
        .await;
        let t = Instant::now();
        let before = histogram(engine, "sluice_drain_batch_seconds");
        wait_for("drained", Duration::from_secs(1800), || {
            engine.mode() == sluice::engine::mode::Mode::Direct
        })
        .await;
        let took = t.elapsed().as_secs_f64();
        let after = histogram(engine, "sluice_drain_batch_seconds");
        drain.push(depth as f64 / took);
        in_batches.push((after.0 - before.0) / took * 100.0);
        batch_rows.push(depth as f64 / (after.1 - before.1).max(1.0));
    }
    report.add("draining", "sluice drain rows/s", "rows/s", drain);
    report.add(
        "draining",
        "of the drain, time in MariaDB batches",
        "%",
        in_batches,
    );
    report.add("draining", "rows per drain batch", "rows", batch_rows);
    // Baselines: the same statements one by one in autocommit on one
    // connection (a sample), and 100-row INSERT statements.
    let mut one = Vec::new();
    let mut multi = Vec::new();
    for _ in 0..set.runs {
        let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&db.app_url()).unwrap())
            .await
            .unwrap();
        let t = Instant::now();
        for i in 0..set.one_by_one_sample {
            let (k, cc, pad) = row(99, i as u64);
            c.query_drop(format!(
                "INSERT INTO sbtest (k, c, pad) VALUES ({k}, '{cc}', '{pad}')"
            ))
            .await
            .unwrap();
        }
        one.push(set.one_by_one_sample as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for chunk in (0..set.drain_rows).collect::<Vec<_>>().chunks(100) {
            let values: Vec<String> = chunk
                .iter()
                .map(|i| {
                    let (k, cc, pad) = row(98, *i as u64);
                    format!("({k}, '{cc}', '{pad}')")
                })
                .collect();
            c.query_drop(format!(
                "INSERT INTO sbtest (k, c, pad) VALUES {}",
                values.join(",")
            ))
            .await
            .unwrap();
        }
        multi.push(set.drain_rows as f64 / t.elapsed().as_secs_f64());
        let _ = c.disconnect().await;
    }
    report.add("draining", "one-by-one autocommit rows/s", "rows/s", one);
    report.add("draining", "100-row INSERT ceiling rows/s", "rows/s", multi);
    report.against("sluice drain rows/s", "one-by-one autocommit rows/s");
    report.against("sluice drain rows/s", "100-row INSERT ceiling rows/s");
    let vs_multi = report
        .figures
        .iter()
        .find(|f| f.what == "sluice drain rows/s")
        .map(|f| f.median())
        .unwrap_or(0.0)
        / report
            .figures
            .iter()
            .find(|f| f.what == "100-row INSERT ceiling rows/s")
            .map(|f| f.median())
            .unwrap_or(1.0);
    println!("  sluice drain / 100-row ceiling: {vs_multi:.2}");
}
