//! Micro-benchmarks of the hot pieces: the record envelope (encode and
//! decode of a typical queued write), the SQL lexer, and a queue append with
//! group commit (64 concurrent writers sharing flushes on a real sled store).
//!
//! `cargo bench --bench micro`. These measure sluice's own code in
//! isolation; the end-to-end comparison with direct MariaDB is separate.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::store::record;
use sluice::store::{Backend, RedbBackend, SledBackend};
use sluice::store::{QueueLimits, QueuedWrite, Store};
use sluice::write::{Param, SessionContext, Statement, Write, WriteId};
use std::sync::Arc;

fn sample(i: u64) -> QueuedWrite {
    QueuedWrite {
        write: Write {
            id: WriteId(u128::from(i) << 64 | 0xfeed),
            statements: vec![Statement {
                sql: "INSERT INTO orders (customer, total, note) VALUES (?, ?, ?)".into(),
                params: vec![
                    Param::Int(42),
                    Param::Float(19.99),
                    Param::Text("gift wrap, ring twice".into()),
                ],
            }],
            context: SessionContext {
                database: Some("app".into()),
                sql_mode: Some("STRICT_TRANS_TABLES".into()),
                time_zone: None,
                charset: None,
                accepted_at_micros: 1_700_000_000_000_000,
            },
            idempotency_key: Some(format!("order-{i}")),
            ordering_key: None,
        },
        outcome_unknown: false,
        attempts: 0,
        last_error: None,
    }
}

fn envelope(c: &mut Criterion) {
    let w = sample(1);
    let bytes = record::encode(&w).unwrap();
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| b.iter(|| record::encode(&w).unwrap()));
    g.bench_function("decode", |b| {
        b.iter(|| record::decode::<QueuedWrite>(&bytes).unwrap())
    });
    g.finish();
}

fn lexer(c: &mut Criterion) {
    let sql = "/* app */ INSERT INTO orders (customer, total, note) VALUES (?, ?, 'it''s -- not a comment ?') -- trailing ?";
    let mut g = c.benchmark_group("lexer");
    g.throughput(Throughput::Bytes(sql.len() as u64));
    g.bench_function("scan_insert", |b| {
        b.iter(|| sluice::sql::scan(sql.as_bytes(), sluice::sql::Dialect::default()))
    });
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    for engine in ["redb", "sled"] {
        group_commit_on(c, engine);
    }
}

/// 64 writers append and wait for their flush on `engine`'s store.
fn group_commit_on(c: &mut Criterion, engine: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> = match engine {
        "redb" => Arc::new(RedbBackend::open(dir.path(), 64 << 20).unwrap()),
        _ => Arc::new(SledBackend::open(dir.path(), 64 << 20).unwrap()),
    };
    let queue = Arc::new(
        Store::open(
            store,
            QueueLimits {
                max_count: u64::MAX,
                max_bytes: u64::MAX,
            },
        )
        .unwrap(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    rt.spawn(queue.group_commit().clone().run(stop.clone()));
    let writers = 64u64;
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(writers));
    g.sample_size(20);
    g.bench_function(format!("append_and_sync_64_writers_{engine}"), |b| {
        b.iter_batched(
            || (0..writers).map(sample).collect::<Vec<_>>(),
            |batch| {
                rt.block_on(async {
                    let tasks: Vec<_> = batch
                        .into_iter()
                        .map(|w| {
                            let q = queue.clone();
                            tokio::spawn(async move {
                                let seq = q.append_queued(&w, None).unwrap();
                                q.sync_appended(seq).await.unwrap();
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    stop.cancel();
}

criterion_group!(benches, envelope, lexer, group_commit);
criterion_main!(benches);
