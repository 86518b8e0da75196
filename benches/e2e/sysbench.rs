//! sysbench `oltp_insert` at 1, 8 and 32 threads: straight to MariaDB,
//! through an HAProxy TCP hop, and through sluice's MySQL front.

use super::*;

pub async fn run(rig: &Rig, report: &mut Report, set: &Settings) {
    let Rig {
        db,
        running,
        haproxy_port,
        ..
    } = rig;
    let front = running.mysql_addr.unwrap().port();
    for threads in [1usize, 8, 32] {
        println!("\nsysbench oltp_insert, {threads} threads");
        let paths = [
            ("direct", db.port(), APP_PASSWORD),
            ("via HAProxy", *haproxy_port, APP_PASSWORD),
            ("via MySQL front", front, FRONT_PASSWORD),
        ];
        let mut tps: [Vec<f64>; 3] = Default::default();
        let mut p95: [Vec<f64>; 3] = Default::default();
        for _ in 0..set.runs {
            for (i, (_, port, password)) in paths.iter().enumerate() {
                let (t, p) = sysbench(*port, password, set.sysbench_secs, threads);
                tps[i].push(t);
                p95[i].push(p);
            }
        }
        let sc = format!("sysbench oltp_insert, {threads} threads");
        for (figure, unit, runs) in [("tps", "tx/s", &tps), ("p95", "ms", &p95)] {
            for (i, (name, _, _)) in paths.iter().enumerate() {
                let what = format!("sysbench {name} {figure} @{threads}");
                report.add(&sc, &what, unit, runs[i].clone());
                if i > 0 {
                    report.against(&what, &format!("sysbench direct {figure} @{threads}"));
                }
                if i > 1 {
                    report.against(&what, &format!("sysbench via HAProxy {figure} @{threads}"));
                }
            }
        }
    }
}
