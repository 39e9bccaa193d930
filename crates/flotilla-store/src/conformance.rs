//! The conformance suite every [`Store`] backend must pass.
//!
//! It lives in the library (not under `tests/`) so that each backend's own
//! test file runs the same checks against its real engine:
//! `conformance::run_all(|| async { fresh store }).await`. The checks panic
//! with a message naming the violated rule, like any test assertion.

use crate::model::*;
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Run every check, each against a fresh, empty store from `make`.
pub async fn run_all<F, Fut, S>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    put_get_and_counters(&make().await).await;
    list_is_prefix_scoped_and_ordered(&make().await).await;
    compare_and_swap_rules(&make().await).await;
    txn_is_all_or_nothing(&make().await).await;
    deletes(&make().await).await;
    watch_replays_history_then_live(&make().await).await;
    watch_from_now_sees_only_new_events(&make().await).await;
    leases_keep_alive_expire_and_revoke(&make().await).await;
    concurrent_cas_is_linearizable(Arc::new(make().await)).await;
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        lease: None,
    }
}

pub async fn put_get_and_counters(store: &impl Store) {
    assert_eq!(
        store.revision().await.unwrap(),
        0,
        "a new store is at revision 0"
    );
    assert!(store.get("a").await.unwrap().is_none());
    let r1 = store.put("a", b"1".to_vec()).await.unwrap();
    assert_eq!(r1, 1, "the first write is revision 1");
    let kv = store
        .get("a")
        .await
        .unwrap()
        .expect("written key is readable");
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (&b"1"[..], 1, 1, 1)
    );
    let r2 = store.put("a", b"2".to_vec()).await.unwrap();
    assert_eq!(r2, 2);
    let kv = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (1, 2, 2),
        "an update keeps create_revision and bumps version"
    );
    assert_eq!(store.revision().await.unwrap(), 2);
}

pub async fn list_is_prefix_scoped_and_ordered(store: &impl Store) {
    for key in ["svc/b", "svc/a", "task/x", "svc/c", "svcx"] {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let listing = store.list("svc/").await.unwrap();
    let keys: Vec<_> = listing.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["svc/a", "svc/b", "svc/c"],
        "list returns only the prefix, in key order"
    );
    assert_eq!(listing.revision, 5, "a listing carries the store revision");
    assert_eq!(
        store.list("").await.unwrap().kvs.len(),
        5,
        "the empty prefix lists everything"
    );
    assert!(store.list("nothing/").await.unwrap().kvs.is_empty());
}

pub async fn compare_and_swap_rules(store: &impl Store) {
    let created = store
        .compare_and_swap("k", Expect::Absent, Some(b"v1".to_vec()))
        .await
        .unwrap();
    assert!(
        created.succeeded,
        "create-if-absent on an absent key succeeds"
    );
    let again = store
        .compare_and_swap("k", Expect::Absent, Some(b"x".to_vec()))
        .await
        .unwrap();
    assert!(
        !again.succeeded,
        "create-if-absent on an existing key fails"
    );
    assert_eq!(
        again.revision, created.revision,
        "a failed CAS does not bump the revision"
    );
    let (failed, current) = again
        .failed
        .expect("a failed CAS says which compare failed");
    assert_eq!(failed.key, "k");
    assert_eq!(current.expect("and the current value").value, b"v1");
    let stale = store
        .compare_and_swap(
            "k",
            Expect::ModRevision(created.revision + 10),
            Some(b"x".to_vec()),
        )
        .await
        .unwrap();
    assert!(!stale.succeeded, "a stale mod_revision fails");
    let updated = store
        .compare_and_swap(
            "k",
            Expect::ModRevision(created.revision),
            Some(b"v2".to_vec()),
        )
        .await
        .unwrap();
    assert!(updated.succeeded, "the current mod_revision succeeds");
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v2");
    let present = store
        .compare_and_swap("missing", Expect::Present, None)
        .await
        .unwrap();
    assert!(!present.succeeded, "Expect::Present fails on an absent key");
    let deleted = store
        .compare_and_swap("k", Expect::ModRevision(updated.revision), None)
        .await
        .unwrap();
    assert!(
        deleted.succeeded && store.get("k").await.unwrap().is_none(),
        "CAS delete removes the key"
    );
}

pub async fn txn_is_all_or_nothing(store: &impl Store) {
    store.put("guard", b"g".to_vec()).await.unwrap();
    let rev = store.revision().await.unwrap();
    let failing = store
        .txn(
            vec![Compare {
                key: "guard".into(),
                expect: Expect::Absent,
            }],
            vec![put("t/1", "a"), put("t/2", "b")],
        )
        .await
        .unwrap();
    assert!(!failing.succeeded);
    assert!(
        store.list("t/").await.unwrap().kvs.is_empty(),
        "a failed txn writes nothing"
    );
    let ok = store
        .txn(
            vec![Compare {
                key: "guard".into(),
                expect: Expect::Present,
            }],
            vec![put("t/1", "a"), put("t/2", "b")],
        )
        .await
        .unwrap();
    assert!(ok.succeeded);
    assert_eq!(ok.revision, rev + 1, "one transaction is one revision");
    let listing = store.list("t/").await.unwrap();
    assert!(
        listing.kvs.iter().all(|kv| kv.mod_revision == rev + 1),
        "all writes of a txn share its revision"
    );
}

pub async fn deletes(store: &impl Store) {
    let rev = store.revision().await.unwrap();
    assert_eq!(
        store.delete("absent").await.unwrap(),
        rev,
        "deleting an absent key changes nothing"
    );
    for key in ["d/1", "d/2", "e/1"] {
        store.put(key, b"x".to_vec()).await.unwrap();
    }
    let rev = store.delete("d/1").await.unwrap();
    assert!(store.get("d/1").await.unwrap().is_none());
    let result = store
        .txn(
            vec![],
            vec![
                Op::DeletePrefix {
                    prefix: "d/".into(),
                },
                Op::DeletePrefix {
                    prefix: "e/".into(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(result.revision, rev + 1);
    assert!(
        store.list("").await.unwrap().kvs.is_empty(),
        "DeletePrefix removes every key under the prefix"
    );
    store.put("d/1", b"again".to_vec()).await.unwrap();
    let kv = store.get("d/1").await.unwrap().unwrap();
    assert_eq!(
        (kv.version, kv.create_revision),
        (1, kv.mod_revision),
        "a re-created key starts its counters afresh"
    );
}

async fn next_event(watch: &mut crate::Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch delivered nothing within 10 s")
        .expect("watch ended")
        .expect("watch failed")
}

pub async fn watch_replays_history_then_live(store: &impl Store) {
    let r1 = store.put("w/a", b"1".to_vec()).await.unwrap();
    store.put("other", b"x".to_vec()).await.unwrap();
    let r3 = store.put("w/b", b"2".to_vec()).await.unwrap();
    store.delete("w/a").await.unwrap();
    let mut watch = store.watch("w/", Some(r1 + 1)).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!(
        (e.kind.clone(), e.kv.key.as_str(), e.revision()),
        (EventKind::Put, "w/b", r3),
        "history starts at the requested revision and skips other prefixes"
    );
    let e = next_event(&mut watch).await;
    assert_eq!(e.kind, EventKind::Delete);
    assert_eq!(
        e.prev.expect("a delete carries the previous value").value,
        b"1"
    );
    let r5 = store.put("w/c", b"3".to_vec()).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!(
        (e.kv.key.as_str(), e.revision()),
        ("w/c", r5),
        "live events follow history without gaps"
    );
    let mut from_start = store.watch("w/", Some(1)).await.unwrap();
    assert_eq!(next_event(&mut from_start).await.revision(), r1);
}

pub async fn watch_from_now_sees_only_new_events(store: &impl Store) {
    store.put("n/old", b"x".to_vec()).await.unwrap();
    let mut watch = store.watch("n/", None).await.unwrap();
    let rev = store.put("n/new", b"y".to_vec()).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!((e.kv.key.as_str(), e.revision()), ("n/new", rev));
}

pub async fn leases_keep_alive_expire_and_revoke(store: &impl Store) {
    assert!(matches!(
        store.grant_lease(Duration::from_millis(10)).await,
        Err(StoreError::InvalidTtl(_))
    ));
    let unknown = store
        .txn(
            vec![],
            vec![Op::Put {
                key: "l/x".into(),
                value: vec![],
                lease: Some(999_999),
            }],
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::LeaseNotFound(999_999))),
        "writing under an unknown lease fails"
    );

    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store
        .txn(
            vec![],
            vec![Op::Put {
                key: "l/node".into(),
                value: b"up".to_vec(),
                lease: Some(lease),
            }],
        )
        .await
        .unwrap();
    let mut watch = store.watch("l/", None).await.unwrap();
    // Kept alive for twice its TTL, the key stays.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        store.keep_alive(lease).await.unwrap();
    }
    assert!(
        store.get("l/node").await.unwrap().is_some(),
        "a kept-alive lease keeps its keys"
    );
    // Left alone, it expires and its key is deleted (watchers see the delete).
    let e = next_event(&mut watch).await;
    assert_eq!(
        (e.kind, e.kv.key.as_str()),
        (EventKind::Delete, "l/node"),
        "an expired lease deletes its keys"
    );
    assert!(matches!(
        store.keep_alive(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));

    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store
        .txn(
            vec![],
            vec![
                Op::Put {
                    key: "l/a".into(),
                    value: vec![],
                    lease: Some(lease),
                },
                put("l/free", ""),
            ],
        )
        .await
        .unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert!(
        store.get("l/a").await.unwrap().is_none(),
        "revoking a lease deletes its keys at once"
    );
    assert!(
        store.get("l/free").await.unwrap().is_some(),
        "keys without the lease stay"
    );
    store.revoke_lease(lease).await.unwrap();
}

pub async fn concurrent_cas_is_linearizable<S: Store>(store: Arc<S>) {
    store.put("counter", b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let kv = store.get("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    if store
                        .compare_and_swap(
                            "counter",
                            Expect::ModRevision(kv.mod_revision),
                            Some(next),
                        )
                        .await
                        .unwrap()
                        .succeeded
                    {
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let kv = store.get("counter").await.unwrap().unwrap();
    assert_eq!(
        kv.value, b"40",
        "40 CAS increments from 4 writers give 40: no lost update"
    );
}
