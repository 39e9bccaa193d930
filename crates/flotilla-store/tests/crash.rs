//! kill -9 in the middle of a write stream loses no acknowledged write.
//!
//! The test binary re-executes itself as the writer (selected by an
//! environment variable), so the crash is a real SIGKILL of another process.

use flotilla_store::{EmbeddedStore, Store};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "FLOTILLA_STORE_CRASH_WRITER";

/// In the child: write keys forever, printing each acknowledged one.
#[tokio::test]
async fn crash_writer_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // Not the child: nothing to do in a normal run.
    };
    let store = EmbeddedStore::open(std::path::Path::new(&path)).unwrap();
    for i in 0u64.. {
        store
            .put(&format!("k/{i:08}"), i.to_string().into_bytes())
            .await
            .unwrap();
        println!("ack {i}");
    }
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer_child", "--exact", "--nocapture"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
            let n: u64 = n.parse().unwrap();
            acked = Some(n);
            if n >= 200 {
                break;
            }
        }
    }
    // SIGKILL, by the PID we spawned.
    child.kill().unwrap();
    child.wait().unwrap();
    let acked = acked.expect("the writer acknowledged writes");
    let store = EmbeddedStore::open(&path).unwrap();
    let listing = store.list("k/").await.unwrap();
    assert!(
        listing.kvs.len() as u64 > acked,
        "every acknowledged write (0..={acked}) is present after kill -9, found {}",
        listing.kvs.len()
    );
    for (i, kv) in listing.kvs.iter().enumerate() {
        assert_eq!(
            kv.key,
            format!("k/{i:08}"),
            "no gap in the acknowledged sequence"
        );
    }
}
