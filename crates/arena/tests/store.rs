//! The durable store's promise across its two files: recovery starts from the newer of the
//! clean-stop snapshot and the periodic checkpoint, the log entries a checkpoint covers
//! are trimmed, and a log that no longer continues the snapshot recovery can use (the
//! checkpoint file lost after its entries were trimmed) is refused, never replayed with a
//! silent gap. Real redb files in a temp dir.

use roomcast_arena::state::{Command, Emit, ExchangeState, Mode, StateLimits};
use roomcast_arena::store::{Batch, Store, CHECKPOINT_FILE_NAME};
use roomcast_arena::{ArenaConfig, ArenaError, Funding};
use roomcast_engine::auth::CollectiveId;

fn open_account(n: u64) -> Command {
    Command::OpenAccount {
        collective: CollectiveId::parse(&format!("c{n}")).expect("collective id"),
        funding: Funding {
            cash_cents: 1_000 * n,
            positions: Default::default(),
        },
    }
}

fn json(c: &Command) -> Vec<u8> {
    serde_json::to_vec(c).expect("json")
}

fn state_after(commands: &[Command]) -> ExchangeState {
    let config = ArenaConfig::default();
    let mut s = ExchangeState::new(
        config.validate().expect("instruments"),
        StateLimits::of(&config),
    );
    for c in commands {
        s.apply(c, &mut Emit::discard(), Mode::Replay)
            .expect("applies");
    }
    s
}

#[test]
fn a_checkpoint_covers_the_trimmed_log_and_losing_it_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commands: Vec<Command> = (1..=11).map(open_account).collect();
    {
        let store = Store::open(Some(dir.path())).expect("open");
        let first = Batch {
            first_seq: 1,
            commands: commands[..10].iter().map(json).collect(),
            ..Batch::default()
        };
        store
            .write(&first, redb::Durability::Immediate)
            .expect("write");
        let checkpoint = state_after(&commands[..5]).snapshot_json().expect("json");
        store.write_checkpoint(5, &checkpoint).expect("checkpoint");
        // The next batch may trim what the checkpoint covers.
        let next = Batch {
            first_seq: 11,
            commands: vec![json(&commands[10])],
            trim_to: 5,
            ..Batch::default()
        };
        store
            .write(&next, redb::Durability::Immediate)
            .expect("write");

        let rec = store.recover().expect("recover");
        assert_eq!(rec.snapshot_seq, 5);
        assert_eq!(rec.next_seq, 12);
        assert_eq!(rec.commands, commands[5..].to_vec());
        let mut rebuilt = state_after(&[]);
        rebuilt
            .restore(rec.snapshot.expect("snapshot"))
            .expect("restore");
        for c in &rec.commands {
            rebuilt
                .apply(c, &mut Emit::discard(), Mode::Replay)
                .expect("applies");
        }
        assert_eq!(rebuilt.snapshot(), state_after(&commands).snapshot());
    }
    // Entries 1-5 are gone; without the checkpoint the log does not continue anything.
    std::fs::remove_file(dir.path().join(CHECKPOINT_FILE_NAME)).expect("remove");
    let store = Store::open(Some(dir.path())).expect("open");
    match store.recover() {
        Err(ArenaError::Storage(msg)) => assert!(msg.contains("gap"), "{msg}"),
        other => panic!("expected a refused gap, got {other:?}"),
    }
}
