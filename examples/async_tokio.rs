//! Async appends from many tokio tasks, and a subscription consumed as a `Stream`.
//! Each `append_async` resolves once its record is durable, without blocking a runtime
//! thread: the ledger's flusher thread does the shared device sync. Bounded work.
//!
//!     cargo run --example async_tokio --features tokio

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use chainlog::{Ledger, Options};
use futures_core::Stream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let ledger = Arc::new(Ledger::create(
        tmp.path().join("audit"),
        Options::default(),
    )?);

    // Follow from the start, as a Stream, on its own task.
    let mut sub = ledger.subscribe(0)?;
    let follower = tokio::spawn(async move {
        let mut n = 0u64;
        // `poll_fn` keeps the example free of a stream-combinator crate.
        while let Some(r) = poll_fn(|cx| Pin::new(&mut sub).poll_next(cx)).await {
            let r = r?;
            assert_eq!(r.seq, n, "in order, once each");
            n += 1;
        }
        Ok::<u64, chainlog::Error>(n)
    });

    // 32 tasks on one thread, 10 durable appends each: they share group commits.
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let l = Arc::clone(&ledger);
            tokio::spawn(async move {
                for i in 0..10 {
                    l.append_async(format!("task {t} event {i}").as_bytes())
                        .await?;
                }
                l.append_batch_async(&[format!("task {t} done"), format!("task {t} bye")])
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let m = ledger.metrics();
    println!(
        "{} records durable after {} device syncs ({} group commits)",
        m.durable_records, m.device_syncs, m.group_commits
    );

    // Closing does a final sync: run it off the runtime thread. It ends the stream.
    let ledger = Arc::into_inner(ledger).ok_or("ledger still shared")?;
    tokio::task::spawn_blocking(move || ledger.close()).await??;
    let followed = follower.await??;
    println!("the stream delivered {followed} records, then ended at close");
    assert_eq!(followed, 32 * 12);
    Ok(())
}
