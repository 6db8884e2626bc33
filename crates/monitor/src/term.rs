//! The live view: one poller task per node feeding a bounded channel, and a loop that
//! records readings into the [`Model`], reads keys and redraws.
//!
//! The terminal is put in raw mode on the alternate screen behind [`TerminalGuard`], whose
//! `Drop` restores it on every way out: `q`/Esc/Ctrl-C, an error (`?`), or a panic (the
//! guard also installs a panic hook so the message is printed on the normal screen).

use std::io::{IsTerminal, Stdout};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::args::{NodeUrl, Settings};
use crate::http::Client;
use crate::model::Model;
use crate::poll::{poll_node, NodeData, NodeError};

/// How often keys are checked for.
const INPUT_TICK: Duration = Duration::from_millis(50);
/// Readings waiting to be drawn; pollers wait when it is full.
const CHANNEL: usize = 64;

type Reading = (usize, Instant, Result<NodeData, NodeError>);

/// Runs the live view until the user quits.
pub async fn run(settings: &Settings, client: Client) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("the live view needs a terminal: use --once or --json for scripts");
    }
    let mut model = Model::new(
        settings.nodes.iter().map(|n| n.to_string()).collect(),
        settings.interval,
    );
    let (tx, mut rx) = mpsc::channel::<Reading>(CHANNEL);
    // Dropping the set (on any return) aborts every poller.
    let mut pollers = JoinSet::new();
    for (i, node) in settings.nodes.iter().enumerate() {
        pollers.spawn(poll_loop(
            i,
            node.clone(),
            client.clone(),
            settings.interval,
            tx.clone(),
        ));
    }
    drop(tx);

    let mut guard = TerminalGuard::enter().context("setting up the terminal")?;
    let mut input = tokio::time::interval(INPUT_TICK);
    input.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    loop {
        if dirty {
            guard
                .terminal
                .draw(|f| crate::ui::draw(f, &model))
                .context("drawing")?;
            dirty = false;
        }
        tokio::select! {
            Some((i, at, result)) = rx.recv() => {
                model.record(i, at, result);
                dirty = true;
            }
            _ = input.tick() => {
                while event::poll(Duration::ZERO).context("reading the terminal")? {
                    match event::read().context("reading the terminal")? {
                        Event::Key(key) if key.kind == KeyEventKind::Press && is_quit(&key) => {
                            return Ok(());
                        }
                        Event::Resize(..) => dirty = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// `q`, Esc or Ctrl-C (raw mode turns Ctrl-C into a key).
fn is_quit(key: &KeyEvent) -> bool {
    match key.code {
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Polls one node every `interval` until the receiver is gone. A slow node delays only its
/// own next poll (missed ticks are skipped, never queued up).
async fn poll_loop(
    index: usize,
    node: NodeUrl,
    client: Client,
    interval: Duration,
    tx: mpsc::Sender<Reading>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let result = poll_node(&client, &node).await;
        if tx.send((index, Instant::now(), result)).await.is_err() {
            return;
        }
    }
}

/// Raw mode + alternate screen + hidden cursor for as long as it lives.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        // From here on, any failure drops the guard, which undoes what was done.
        let mut guard = TerminalGuard {
            terminal: Terminal::new(CrosstermBackend::new(std::io::stdout()))?,
        };
        execute!(
            guard.terminal.backend_mut(),
            EnterAlternateScreen,
            cursor::Hide
        )?;
        guard.terminal.clear()?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back; harmless when it is already back.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// Restores the terminal before the default hook prints a panic, so the message is readable.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_keys() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(is_quit(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_quit(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_quit(&key(KeyCode::Enter, KeyModifiers::NONE)));
    }
}
