//! Files that are not Skiff stores are refused with an error naming them, never a panic.

use skiff_store::Error;
use skiff_store::embedded::{EmbeddedOptions, EmbeddedStore};

async fn open_err(path: &std::path::Path) -> Error {
    match EmbeddedStore::open(path, EmbeddedOptions::default()).await {
        Ok(_) => panic!("{} opened as a store", path.display()),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "the error names the file: {message}"
            );
            e
        }
    }
}

#[tokio::test]
async fn garbage_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).expect("write garbage");
    let e = open_err(&path).await;
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

#[tokio::test]
async fn a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = open_err(dir.path()).await;
    assert!(matches!(e, Error::Open { .. }), "{e}");
}

#[tokio::test]
async fn an_unrelated_sqlite_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).expect("create a database");
    conn.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');")
        .expect("fill it");
    drop(conn);
    let e = open_err(&path).await;
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("not a Skiff store"), "{e}");
}

#[tokio::test]
async fn another_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default())
        .await
        .expect("create a store");
    drop(store);
    // The writer finishes on its own after the last handle is dropped.
    let mut tries = 0;
    loop {
        let conn = rusqlite::Connection::open(&path).expect("open the store file");
        match conn.execute(
            "UPDATE meta SET value = 99 WHERE name = 'schema_version'",
            [],
        ) {
            Ok(_) => break,
            Err(_) if tries < 50 => tries += 1,
            Err(e) => panic!("cannot edit the store file: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let e = open_err(&path).await;
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[tokio::test]
async fn a_store_already_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = EmbeddedStore::open(&path, EmbeddedOptions::default())
        .await
        .expect("open");
    let e = open_err(&path).await;
    assert!(matches!(e, Error::Open { .. }), "{e}");
    skiff_store::Store::close(&store).await.expect("close");
    let again = EmbeddedStore::open(&path, EmbeddedOptions::default())
        .await
        .expect("open after close");
    drop(again);
}
