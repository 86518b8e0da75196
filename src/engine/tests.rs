//! Admission tests on a temporary store with no database: the engine starts
//! buffering (nothing answers on its primary), so every write goes to the
//! queue and its answer depends on the store alone.

use super::*;
use crate::db::DbTimeouts;
use crate::store::backend::TestBackend;
use crate::store::SledBackend;
use crate::write::Param;

fn config(max_count: u64) -> EngineConfig {
    EngineConfig {
        probe_interval: Duration::from_secs(3600),
        recover_after: 1,
        limits: QueueLimits {
            max_count,
            max_bytes: 1 << 30,
        },
        pacing: pacing::PacingConfig {
            max_batch: 100,
            target_latency: Duration::from_millis(100),
            max_rate: None,
        },
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ledger_retention: Duration::from_secs(3600),
        prune_interval: Duration::from_secs(3600),
        failover: None,
        recovery: None,
    }
}

/// An engine whose primary refuses connections (nothing listens on port 1).
async fn offline_engine(backend: Arc<dyn Backend>, max_count: u64) -> Engine {
    let timeouts = DbTimeouts {
        write: Duration::from_millis(200),
        probe: Duration::from_millis(200),
    };
    let db = Database::new(
        "mysql://app:pw@127.0.0.1:1/app",
        "sluice_applied",
        timeouts,
        1,
        Default::default(),
    )
    .expect("valid url");
    Engine::start(config(max_count), backend, db, None)
        .await
        .expect("engine starts")
}

fn request(key: Option<&str>, value: i64) -> WriteRequest {
    WriteRequest {
        statements: vec![Statement {
            sql: "INSERT INTO t (v) VALUES (?)".into(),
            params: vec![Param::Int(value)],
        }],
        context: RequestContext::default(),
        idempotency_key: key.map(str::to_string),
        ordering_key: None,
        wait: Duration::ZERO,
    }
}

fn sled(dir: &tempfile::TempDir) -> SledBackend {
    SledBackend::open(dir.path(), 8 << 20).expect("store opens")
}

#[tokio::test]
async fn a_repeated_key_is_answered_queued_only_after_a_flush_covers_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(TestBackend::new(dir.path()));
    backend.gate.send_replace(false);
    let engine = offline_engine(backend.clone(), 100).await;
    assert_eq!(engine.mode(), Mode::Buffering);

    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(request(Some("k1"), 1)).await }
    });
    // The original is in the store (and its status entry with it), not flushed.
    for _ in 0..200 {
        if engine.status().queue.depth == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.status().queue.depth, 1);

    let again = tokio::spawn({
        let engine = engine.clone();
        async move { engine.submit(request(Some("k1"), 1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !again.is_finished(),
        "a repeated idempotency key was answered before any flush covered the original"
    );
    assert!(!first.is_finished());

    backend.gate.send_replace(true);
    let (a, b) = (first.await.unwrap(), again.await.unwrap());
    let id_a = match a {
        Ok(Submitted::Queued { id, .. }) => id,
        other => panic!("first: {other:?}"),
    };
    match b {
        Ok(Submitted::Queued { id, .. }) => assert_eq!(id, id_a),
        other => panic!("repeat: {other:?}"),
    }
    assert_eq!(engine.status().queue.depth, 1, "the repeat queued nothing");
    engine.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn while_buffering_writes_queue_in_order_and_a_full_queue_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let engine = offline_engine(Arc::new(sled(&dir)), 3).await;
    let mut ids = Vec::new();
    for v in 0..3 {
        match engine.submit(request(None, v)).await {
            Ok(Submitted::Queued { id, .. }) => ids.push(id),
            other => panic!("write {v}: {other:?}"),
        }
    }
    let queued: Vec<WriteId> = engine
        .queued(0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, q)| q.write.id)
        .collect();
    assert_eq!(queued, ids, "queued in acceptance order");
    match engine.submit(request(None, 9)).await {
        Err(EngineError::QueueFull { depth: 3, .. }) => {}
        other => panic!("a fourth write: {other:?}"),
    }
    assert_eq!(engine.status().queue.depth, 3, "nothing queued was lost");
    engine.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = offline_engine(Arc::new(sled(&dir)), 100).await;
    assert!(matches!(
        engine.submit(request(Some("k"), 1)).await,
        Ok(Submitted::Queued { .. })
    ));
    match engine.submit(request(Some("k"), 2)).await {
        Err(EngineError::IdempotencyMismatch { key }) => assert_eq!(key, "k"),
        other => panic!("reused key: {other:?}"),
    }
    assert_eq!(engine.status().queue.depth, 1);
    engine.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_read_is_refused_at_admission_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let engine = offline_engine(Arc::new(sled(&dir)), 100).await;
    let mut req = request(None, 1);
    req.statements[0].sql = "SELECT 1".into();
    req.statements[0].params.clear();
    assert!(matches!(
        engine.submit(req).await,
        Err(EngineError::Invalid(_))
    ));
    assert_eq!(engine.status().queue.depth, 0);
    engine.shutdown(Duration::from_secs(2)).await;
}
