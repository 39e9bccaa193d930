//! The embedded backend against the conformance suite, plus what only a
//! file-backed store can show: durability across reopen.

use flotilla_store::{conformance, EmbeddedStore, Expect, Store};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("store-{n}.redb"));
        async move { EmbeddedStore::open(&path).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reopen_and_history_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let rev = {
        let store = EmbeddedStore::open(&path).unwrap();
        store.put("svc/web", b"v1".to_vec()).await.unwrap();
        store
            .compare_and_swap("svc/api", Expect::Absent, Some(b"v1".to_vec()))
            .await
            .unwrap()
            .revision
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        store.revision().await.unwrap(),
        rev,
        "the revision survives reopen"
    );
    assert_eq!(store.get("svc/web").await.unwrap().unwrap().value, b"v1");
    let mut watch = store.watch("svc/", Some(1)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.kv.key, "svc/web",
        "history from before the reopen is still watchable"
    );
    assert_eq!(
        store.put("svc/db", vec![]).await.unwrap(),
        rev + 1,
        "revisions continue, never reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_reopen_with_a_fresh_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let lease = {
        let store = EmbeddedStore::open(&path).unwrap();
        let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
        store
            .txn(
                vec![],
                vec![flotilla_store::Op::Put {
                    key: "node/1".into(),
                    value: vec![],
                    lease: Some(lease),
                }],
            )
            .await
            .unwrap();
        lease
    };
    let store = EmbeddedStore::open(&path).unwrap();
    store
        .keep_alive(lease)
        .await
        .expect("a persisted lease is live after reopen");
    assert!(store.get("node/1").await.unwrap().is_some());
    store.revoke_lease(lease).await.unwrap();
    assert!(store.get("node/1").await.unwrap().is_none());
}
