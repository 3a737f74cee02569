//! Store write throughput: the embedded store against etcd, with one writer and with 64
//! concurrent writers, every put acknowledged only once durable.
//!
//! `cargo bench --bench store`. The etcd column starts a temporary etcd (from
//! `SKIFF_ETCD_BIN`, else `etcd` on the PATH) and is skipped if there is none.
//! `SKIFF_BENCH_VALUE_BYTES` sets the value size (default 256).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use skiff_store::Store;
use skiff_store::embedded::{EmbeddedOptions, EmbeddedStore};

struct Scenario {
    name: &'static str,
    writers: usize,
    embedded_puts: usize,
    etcd_puts: usize,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "sequential",
        writers: 1,
        embedded_puts: 2_000,
        etcd_puts: 1_000,
    },
    Scenario {
        name: "concurrent",
        writers: 64,
        embedded_puts: 50_000,
        etcd_puts: 20_000,
    },
];

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let value_bytes: usize = match std::env::var("SKIFF_BENCH_VALUE_BYTES") {
        Ok(v) => v.parse().context("SKIFF_BENCH_VALUE_BYTES")?,
        Err(_) => 256,
    };
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let store = EmbeddedStore::open(
            dir.path().join(format!("bench-{i}.db")),
            EmbeddedOptions::default(),
        )
        .await?;
        let store: Arc<dyn Store> = Arc::new(store);
        let embedded = measure(
            &store,
            scenario.writers,
            scenario.embedded_puts,
            value_bytes,
        )
        .await?;
        store.close().await?;

        let started = match skiff_store::testing::EtcdProcess::start().await {
            Ok(server) => server.connect().await.map(|store| (server, store)),
            Err(e) => Err(e),
        };
        let etcd = match started {
            Ok((server, store)) => {
                let store: Arc<dyn Store> = Arc::new(store);
                let rate =
                    measure(&store, scenario.writers, scenario.etcd_puts, value_bytes).await?;
                drop(server);
                Some(rate)
            }
            Err(e) => {
                eprintln!("etcd skipped: {e:#}");
                None
            }
        };
        rows.push((scenario, embedded, etcd));
    }

    println!();
    println!("store puts/s, {value_bytes}-byte values, each put acknowledged once durable");
    println!(
        "{:<12} {:>8} {:>18} {:>18}",
        "scenario", "writers", "embedded", "etcd"
    );
    for (scenario, embedded, etcd) in rows {
        let etcd = match etcd {
            Some(rate) => format!("{rate:>8.0} ({} puts)", scenario.etcd_puts),
            None => "-".into(),
        };
        println!(
            "{:<12} {:>8} {:>18} {:>18}",
            scenario.name,
            scenario.writers,
            format!("{embedded:>8.0} ({} puts)", scenario.embedded_puts),
            etcd
        );
    }
    Ok(())
}

/// Puts `total` fresh keys from `writers` concurrent tasks; returns puts per second.
async fn measure(
    store: &Arc<dyn Store>,
    writers: usize,
    total: usize,
    value_bytes: usize,
) -> Result<f64> {
    let per_writer = total / writers;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let store = Arc::clone(store);
        let value = vec![b'v'; value_bytes];
        tasks.spawn(async move {
            for i in 0..per_writer {
                let key = format!("/registry/bench/{writer}/{i}");
                store.put(key.as_bytes(), value.clone()).await?;
            }
            Ok::<_, skiff_store::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((per_writer * writers) as f64 / started.elapsed().as_secs_f64())
}
