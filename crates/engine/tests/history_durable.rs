//! The durable history store against real files: reopen, fsync policies, trimming on disk,
//! corrupt files, and a child process killed with SIGKILL after its appends were acked.

mod history {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use roomcast_engine::history::{
        DurableConfig, DurableHistory, FsyncPolicy, History, HistoryError, Retention,
        RetentionRule, StoredEvent, FILE_NAME,
    };
    use roomcast_protocol::{RoomName, Sequence};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Set in the child process of the SIGKILL test to the store's directory.
    const CHILD_ENV: &str = "ROOMCAST_HISTORY_CRASH_CHILD_DIR";
    /// Events per room the parent waits to see acked before it kills the child.
    const KILL_AFTER: u64 = 300;

    fn room(name: &str) -> Result<RoomName, Box<dyn std::error::Error>> {
        Ok(RoomName::parse(name)?)
    }

    fn now_millis() -> Result<i64, Box<dyn std::error::Error>> {
        Ok(i64::try_from(
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
        )?)
    }

    fn event(room: &RoomName, seq: u64, at: i64) -> StoredEvent {
        StoredEvent {
            sequence: Sequence(seq),
            unix_millis: at,
            frame: Bytes::from(format!("{{\"room\":\"{room}\",\"n\":{seq}}}")),
        }
    }

    fn config(fsync: FsyncPolicy, retention: Retention) -> DurableConfig {
        DurableConfig {
            retention,
            fsync,
            ..DurableConfig::default()
        }
    }

    fn roomy() -> Retention {
        Retention::all(100_000, Duration::from_secs(3600))
    }

    /// Appends `n` events after the room's head and awaits each receipt.
    async fn append_n(store: &DurableHistory, r: &RoomName, n: u64, at: i64) -> TestResult {
        let start = store.head(r)?.sequence.0;
        let mut receipts = Vec::new();
        for s in start + 1..=start + n {
            receipts.push(store.append(r, event(r, s, at))?.durable);
        }
        for durable in receipts {
            durable.await?;
        }
        Ok(())
    }

    fn seqs(store: &DurableHistory, r: &RoomName) -> Result<Vec<u64>, HistoryError> {
        Ok(store
            .read_since(r, Sequence(0), usize::MAX)?
            .events
            .iter()
            .map(|e| e.sequence.0)
            .collect())
    }

    #[tokio::test]
    async fn reopen_continues_with_same_epoch_and_events() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (a, b) = (room("chat:a")?, room("chat:b")?);
        let now = now_millis()?;
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        append_n(&store, &a, 50, now).await?;
        append_n(&store, &b, 7, now).await?;
        let (head_a, head_b) = (store.head(&a)?, store.head(&b)?);
        let before = store.read_since(&a, Sequence(0), 1000)?;
        store.close()?;

        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        assert_eq!(store.head(&a)?, head_a);
        assert_eq!(store.head(&b)?, head_b);
        assert_eq!(store.read_since(&a, Sequence(0), 1000)?, before);
        assert_eq!(store.room_count(), 2);
        let err = store.append(&a, event(&a, 50, now)).err();
        assert!(
            matches!(
                err,
                Some(HistoryError::OutOfOrder {
                    expected: Sequence(51),
                    ..
                })
            ),
            "{err:?}"
        );
        append_n(&store, &a, 1, now).await?;
        drop(store);

        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        assert_eq!(store.head(&a)?.sequence, Sequence(51));
        assert_eq!(store.head(&a)?.epoch, head_a.epoch);
        assert_eq!(seqs(&store, &a)?, (1..=51).collect::<Vec<_>>());
        Ok(())
    }

    /// A store last written by a build without the clean-shutdown marker (layout 1) may have
    /// crashed: it opens under new epochs, numbering and events intact, and is upgraded.
    #[tokio::test]
    async fn a_store_without_the_clean_marker_opens_under_new_epochs() -> TestResult {
        let dir = tempfile::tempdir()?;
        let r = room("r")?;
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        append_n(&store, &r, 3, now_millis()?).await?;
        let before = store.head(&r)?;
        store.close()?;
        {
            let db = redb::Database::create(dir.path().join(FILE_NAME))?;
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))?;
                meta.insert("format", 1)?;
                meta.remove("clean")?;
            }
            txn.commit()?;
        }
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        let after = store.head(&r)?;
        assert_ne!(after.epoch, before.epoch);
        assert_eq!(after.sequence, before.sequence);
        assert_eq!(seqs(&store, &r)?, [1, 2, 3]);
        store.close()?;
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        assert_eq!(store.head(&r)?, after, "upgraded, then closed cleanly");
        Ok(())
    }

    #[tokio::test]
    async fn every_fsync_policy_persists_after_clean_close() -> TestResult {
        for policy in [FsyncPolicy::Batch, FsyncPolicy::Always, FsyncPolicy::Never] {
            let dir = tempfile::tempdir()?;
            let r = room("r")?;
            let store = DurableHistory::open(dir.path(), config(policy, roomy()))?;
            append_n(&store, &r, 20, now_millis()?).await?;
            store.flush().await?;
            append_n(&store, &r, 5, now_millis()?).await?;
            let epoch = store.head(&r)?.epoch;
            if policy == FsyncPolicy::Never {
                drop(store); // Drop must sync as close does
            } else {
                store.close()?;
            }
            let store = DurableHistory::open(dir.path(), config(policy, roomy()))?;
            assert_eq!(store.head(&r)?.epoch, epoch, "{policy:?}");
            assert_eq!(
                seqs(&store, &r)?,
                (1..=25).collect::<Vec<_>>(),
                "{policy:?}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn trims_by_max_events_and_ttl_survive_reopen() -> TestResult {
        let dir = tempfile::tempdir()?;
        let now = now_millis()?;
        let (full, old, mixed) = (room("full")?, room("old")?, room("mixed")?);
        let retention = Retention::all(10, Duration::from_secs(60));
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, retention))?;
        append_n(&store, &full, 30, now).await?;
        append_n(&store, &old, 5, now - 120_000).await?;
        append_n(&store, &mixed, 4, now - 90_000).await?;
        append_n(&store, &mixed, 3, now).await?;
        let old_epoch = store.head(&old)?.epoch;
        let mixed_epoch = store.head(&mixed)?.epoch;
        store.trim(now);
        assert_eq!(seqs(&store, &full)?, (21..=30).collect::<Vec<_>>());
        assert_eq!(seqs(&store, &mixed)?, [5, 6, 7]);
        assert!(seqs(&store, &old)?.is_empty());
        store.close()?;

        // Reopen keeping everything: what is gone was deleted from disk, not just skipped.
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        assert_eq!(seqs(&store, &full)?, (21..=30).collect::<Vec<_>>());
        let read = store.read_since(&mixed, Sequence(0), 100)?;
        assert_eq!(
            read.events.iter().map(|e| e.sequence.0).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        assert!(!read.complete);
        assert_eq!(read.head.epoch, mixed_epoch);
        // On disk, a room whose last event expired is forgotten (in memory, the head() calls
        // above kept it alive); forgetting a room restarts it under a new epoch.
        let fresh = store.head(&old)?;
        assert_eq!(fresh.sequence, Sequence(0));
        assert_ne!(fresh.epoch, old_epoch);
        Ok(())
    }

    #[tokio::test]
    async fn rooms_without_history_are_not_persisted() -> TestResult {
        let dir = tempfile::tempdir()?;
        let retention = Retention {
            rules: vec![
                RetentionRule {
                    prefix: String::new(),
                    max_events: 100,
                    ttl: Duration::from_secs(60),
                },
                RetentionRule {
                    prefix: "tick:".into(),
                    max_events: 0,
                    ttl: Duration::from_secs(60),
                },
            ],
        };
        let tick = room("tick:btc")?;
        let store =
            DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, retention.clone()))?;
        append_n(&store, &tick, 3, now_millis()?).await?;
        assert_eq!(store.head(&tick)?.sequence, Sequence(3));
        store.close()?;
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, retention))?;
        assert_eq!(store.head(&tick)?.sequence, Sequence(0));
        Ok(())
    }

    #[test]
    fn corrupt_or_locked_file_is_a_storage_error() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(FILE_NAME), vec![0x5a; 8192])?;
        let err = DurableHistory::open(dir.path(), DurableConfig::default()).err();
        assert!(matches!(err, Some(HistoryError::Storage(_))), "{err:?}");

        let dir = tempfile::tempdir()?;
        let _first = DurableHistory::open(dir.path(), DurableConfig::default())?;
        let err = DurableHistory::open(dir.path(), DurableConfig::default()).err();
        assert!(matches!(err, Some(HistoryError::Storage(_))), "{err:?}");
        Ok(())
    }

    /// The child half of `acked_events_survive_sigkill`: does nothing unless run by it.
    #[tokio::test]
    async fn crash_child() -> TestResult {
        let Ok(dir) = std::env::var(CHILD_ENV) else {
            return Ok(());
        };
        let store = DurableHistory::open(Path::new(&dir), config(FsyncPolicy::Batch, roomy()))?;
        let rooms = [room("crash:a")?, room("crash:b")?, room("crash:c")?];
        let mut out = std::io::stdout();
        for r in &rooms {
            writeln!(out, "epoch {r} {}", store.head(r)?.epoch)?;
        }
        // Bounded: the parent kills us long before the last round.
        for round in 1..=2_000u64 {
            for r in &rooms {
                append_n(&store, r, 5, now_millis()?).await?;
            }
            writeln!(out, "acked {}", round * 5)?;
            out.flush()?;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }

    #[test]
    fn acked_events_survive_sigkill() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "history::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut epochs = Vec::new();
        let mut acked = 0;
        while acked < KILL_AFTER {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match lines.recv_timeout(wait) {
                Ok(line) => line,
                Err(e) => {
                    child.kill()?;
                    return Err(
                        format!("child stopped reporting after {acked} acked events: {e}").into(),
                    );
                }
            };
            // libtest's "test crash_child ... " has no newline, so our line may follow it.
            let ours = ["epoch ", "acked "]
                .iter()
                .find_map(|w| line.find(w))
                .map_or("", |i| &line[i..]);
            let words: Vec<&str> = ours.split_whitespace().collect();
            match words.as_slice() {
                ["epoch", r, e] => epochs.push((room(r)?, (*e).to_owned())),
                ["acked", n] => acked = n.parse()?,
                _ => {}
            }
        }
        child.kill()?; // SIGKILL, mid-write: the child never stops appending by itself
        let status = child.wait()?;
        assert!(
            !status.success(),
            "the child was killed, it did not finish: {status}"
        );
        // Anything acked after the last line we read is a bonus; everything read must be there.
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            if let Some(i) = line.find("acked ") {
                acked = line[i + 6..].trim().parse()?;
            }
        }

        assert_eq!(epochs.len(), 3);
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        for (r, epoch) in &epochs {
            let head = store.head(r)?;
            // A crash may have lost a tail the child had handed out: the numbering goes on
            // under a new epoch, so no (epoch, sequence) can name two events.
            assert_ne!(head.epoch.as_str(), epoch, "room {r}");
            assert!(
                head.sequence.0 >= acked,
                "room {r}: head {} < acked {acked}",
                head.sequence
            );
            let read = store.read_since(r, Sequence(0), usize::MAX)?;
            assert!(read.complete);
            assert!(u64::try_from(read.events.len())? >= acked, "room {r}");
            for (i, stored) in read.events.iter().take(usize::try_from(acked)?).enumerate() {
                let expected = event(r, u64::try_from(i)? + 1, 0);
                assert_eq!(stored.sequence, expected.sequence, "room {r}");
                assert_eq!(stored.frame, expected.frame, "room {r}");
            }
        }
        // The renewed epochs are themselves durable: a clean close and reopen keeps them,
        // and the numbering (and the retained events) carry on.
        let renewed: Vec<_> = epochs
            .iter()
            .map(|(r, _)| store.head(r))
            .collect::<Result<_, _>>()?;
        let (a, head_a) = (&epochs[0].0, &renewed[0]);
        tokio::runtime::Builder::new_current_thread()
            .build()?
            .block_on(append_n(&store, a, 1, now_millis()?))?;
        store.close()?;
        let store = DurableHistory::open(dir.path(), config(FsyncPolicy::Batch, roomy()))?;
        for ((r, _), head) in epochs.iter().zip(&renewed) {
            assert_eq!(store.head(r)?.epoch, head.epoch, "room {r}");
        }
        assert_eq!(store.head(a)?.sequence, head_a.sequence.next());
        assert_eq!(
            store.read_since(a, Sequence(0), usize::MAX)?.events.len(),
            usize::try_from(head_a.sequence.0 + 1)?
        );
        Ok(())
    }
}
