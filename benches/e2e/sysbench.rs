//! sysbench `oltp_insert` straight to MariaDB and through the MySQL front.

use super::*;

pub async fn run(rig: &Rig, report: &mut Report, set: &Settings) {
    let Rig { db, running, .. } = rig;
    println!("\nsysbench oltp_insert, 8 threads");
    let mut sb_direct = Vec::new();
    let mut sb_front = Vec::new();
    for _ in 0..set.runs {
        sb_direct.push(sysbench(db.port(), APP_PASSWORD, set.sysbench_secs));
        sb_front.push(sysbench(
            running.mysql_addr.unwrap().port(),
            FRONT_PASSWORD,
            set.sysbench_secs,
        ));
    }
    report.add(
        "sysbench oltp_insert",
        "sysbench direct tps",
        "tx/s",
        sb_direct,
    );
    report.add(
        "sysbench oltp_insert",
        "sysbench via MySQL front tps",
        "tx/s",
        sb_front,
    );
    report.against("sysbench via MySQL front tps", "sysbench direct tps");
}
