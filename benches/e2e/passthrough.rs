//! Pass-through cost: writes/s and latency through each front against direct
//! MariaDB and an HAProxy TCP hop at 1, 8 and 32 clients, CPU per write, and where the time of one
//! write goes.

use super::*;

pub async fn run(rig: &Rig, report: &mut Report, set: &Settings) {
    let Rig {
        db,
        engine,
        direct,
        via_haproxy,
        via_http,
        via_front,
        ..
    } = rig;
    println!("pass-through cost (single-row INSERT, the shape of sysbench oltp_insert)");
    for clients in [1usize, 8, 32] {
        let mut tput: [Vec<f64>; 4] = Default::default();
        let mut p50: [Vec<f64>; 4] = Default::default();
        let mut p99: [Vec<f64>; 4] = Default::default();
        // CPU microseconds per write: MariaDB's, and this process's
        // (the clients, plus sluice when it is in the path).
        let mut cpu_db: [Vec<f64>; 4] = Default::default();
        let mut cpu_here: [Vec<f64>; 4] = Default::default();
        let me = std::process::id();
        let db_pid = db.pid().expect("mariadbd runs");
        for _ in 0..set.runs {
            for (i, t) in [&direct, &via_haproxy, &via_http, &via_front]
                .iter()
                .enumerate()
            {
                let (db0, me0) = (cpu_secs(db_pid), cpu_secs(me));
                let mut l = load(t, clients, set.secs, 0.0).await;
                let per = |a: f64, b: f64| (b - a) * 1e6 / l.ops.max(1) as f64;
                cpu_db[i].push(per(db0, cpu_secs(db_pid)));
                cpu_here[i].push(per(me0, cpu_secs(me)));
                tput[i].push(l.per_sec());
                p50[i].push(l.pct(0.50));
                p99[i].push(l.pct(0.99));
            }
        }
        let sc = format!("pass-through, {clients} clients");
        let names = [
            "direct MariaDB",
            "HAProxy TCP hop",
            "sluice HTTP front",
            "sluice MySQL front",
        ];
        for (figure, unit, runs) in [
            ("writes/s", "writes/s", &tput),
            ("p50", "ms", &p50),
            ("p99", "ms", &p99),
        ] {
            for i in 0..4 {
                let what = format!("{} {figure} @{clients}", names[i]);
                report.add(&sc, &what, unit, runs[i].clone());
                if i > 0 && figure != "p50" {
                    report.against(&what, &format!("direct MariaDB {figure} @{clients}"));
                }
                if i > 1 && figure != "p50" {
                    report.against(&what, &format!("HAProxy TCP hop {figure} @{clients}"));
                }
            }
        }
        if clients == 32 {
            // Where the CPU goes: the machine is shared by the clients,
            // sluice and MariaDB, so CPU per write bounds throughput.
            for i in 0..4 {
                report.add(
                    "CPU per write, 32 clients",
                    &format!("{}: MariaDB CPU per write", names[i]),
                    "µs",
                    cpu_db[i].clone(),
                );
                report.add(
                    "CPU per write, 32 clients",
                    &format!("{}: client (+ sluice) CPU per write", names[i]),
                    "µs",
                    cpu_here[i].clone(),
                );
            }
        }
    }

    // Where the time of one write goes (MySQL front, 1 and 8 clients):
    // the client's latency against the time sluice spends applying it
    // (sluice_direct_write_seconds: waiting for a group slot, then
    // MariaDB) and against direct MariaDB.
    for clients in [1usize, 8] {
        let before = apply_time(engine);
        let l = load(via_front, clients, set.secs, 0.0).await;
        let after = apply_time(engine);
        let mean =
            |l: &Load| l.lat_us.iter().sum::<u64>() as f64 / l.lat_us.len().max(1) as f64 / 1000.0;
        let apply_ms = (after.0 - before.0) / (after.1 - before.1).max(1.0) * 1000.0;
        let d = load(direct, clients, set.secs, 0.0).await;
        let sc = format!("where the time goes, {clients} clients");
        report.add(
            &sc,
            &format!("direct MariaDB mean latency @{clients}"),
            "ms",
            vec![mean(&d)],
        );
        report.add(
            &sc,
            &format!("MySQL front mean latency @{clients}"),
            "ms",
            vec![mean(&l)],
        );
        report.add(
            &sc,
            &format!("of which applying, @{clients}"),
            "ms",
            vec![apply_ms],
        );
    }
}
