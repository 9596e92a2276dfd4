//! Following a ledger as it grows: one thread appends audit events while another
//! follows them with `Ledger::subscribe`, first replaying what was already there; then
//! a read-only handle (what a separate reader process opens) follows the same ledger
//! beside the writer. Bounded work; ends by closing the ledger, which ends the
//! subscriptions.
//!
//!     cargo run --example follow

use std::sync::Arc;
use std::time::Duration;

use chainlog::{Ledger, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("audit");
    let ledger = Arc::new(Ledger::create(&dir, Options::default())?);
    ledger.append_batch(&["boot", "config loaded"])?;

    // A follower in the writer's process, from the first record: it replays the two
    // records above, then is woken by each group commit. It ends when the ledger closes.
    let sub = ledger.subscribe(0)?;
    let follower = std::thread::spawn(move || -> chainlog::Result<u64> {
        let mut n = 0;
        for r in sub {
            let r = r?;
            if r.seq % 50 == 0 {
                println!(
                    "follower: record {} {:?}",
                    r.seq,
                    String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default())
                );
            }
            n += 1;
        }
        Ok(n)
    });

    // A reader: opened read-only (no lock, writes nothing), as another process would.
    // Its subscription learns of commits through inotify on the log directory (Linux).
    let reader = Ledger::open(&dir, Options::default().read_only(true))?;
    let mut tail = reader.subscribe(reader.len())?;

    let writer = {
        let l = Arc::clone(&ledger);
        std::thread::spawn(move || -> chainlog::Result<()> {
            for i in 0..200 {
                l.append(format!("user {} did thing {i}", i % 7).as_bytes())?;
            }
            Ok(())
        })
    };
    writer.join().expect("writer thread")?;

    // The reader sees all 200 new records, in order; the timeout only bounds a wait.
    let mut seen = 0;
    while seen < 200 {
        match tail.next_timeout(Duration::from_secs(60))? {
            Some(r) => {
                seen += 1;
                if seen == 200 {
                    println!("reader: caught up at record {}", r.seq);
                }
            }
            None => return Err("the reader saw no new record for 60 s".into()),
        }
    }
    drop(tail);
    reader.close()?;

    let total = ledger.len();
    Arc::into_inner(ledger)
        .ok_or("ledger still shared")?
        .close()?;
    let followed = follower.join().expect("follower thread")?;
    println!("follower delivered {followed} of {total} records, then ended at close");
    assert_eq!(followed, total);
    Ok(())
}
