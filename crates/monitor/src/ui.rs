//! Rendering a [`Model`] with ratatui: a header line, then one panel per node with its
//! figures, in/out sparklines and the top rooms by members and by rate, and, when the node
//! runs a trading arena, its order and trade rates and one line per market (last, bid/ask,
//! volume) at the bottom of the panel.
//!
//! [`draw`] is a pure function of the model, so tests render it into ratatui's
//! `TestBackend` and read the buffer; `--once` uses the same path to print plain text.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::{Frame, Terminal};

use crate::model::{Model, NodeState, RoomRow, Status};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, model: &Model) {
    let [header, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(frame.area());
    frame.render_widget(header_line(model), header);
    let count = u32::try_from(model.nodes.len().max(1)).unwrap_or(u32::MAX);
    let panels = Layout::vertical(
        model
            .nodes
            .iter()
            .map(|_| Constraint::Ratio(1, count))
            .collect::<Vec<_>>(),
    )
    .split(body);
    for (node, area) in model.nodes.iter().zip(panels.iter()) {
        draw_node(frame, *area, node);
    }
}

/// Renders the model at `width`×`height` and returns the screen as text lines.
pub fn render_text(model: &Model, width: u16, height: u16) -> std::io::Result<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height))?;
    terminal.draw(|f| draw(f, model))?;
    Ok(buffer_text(terminal.backend().buffer()))
}

/// A buffer's content as lines of text, trailing spaces removed.
pub fn buffer_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            if let Some(cell) = buffer.cell((x, y)) {
                line.push_str(cell.symbol());
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn header_line(model: &Model) -> Paragraph<'static> {
    let up = model
        .nodes
        .iter()
        .filter(|n| n.status == Status::Up)
        .count();
    let text = format!(
        " roomcast monitor · {up}/{} nodes up · every {} · q quits",
        model.nodes.len(),
        format_interval(model.interval)
    );
    Paragraph::new(Line::from(Span::styled(
        text,
        Style::default().add_modifier(Modifier::BOLD),
    )))
}

fn draw_node(frame: &mut Frame<'_>, area: Rect, node: &NodeState) {
    let (label, color) = match &node.status {
        Status::Waiting => ("waiting", Color::Yellow),
        Status::Up => ("up", Color::Green),
        Status::Down(_) => ("down", Color::Red),
    };
    let title = Line::from(vec![
        Span::raw(format!(" {} ", node.url)),
        Span::styled(
            format!("[{label}] "),
            Style::default().fg(color).add_modifier(Modifier::BOLD),
        ),
    ]);
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let inner = if let Status::Down(error) = &node.status {
        let [line, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
        let stale = if node.stats.is_some() {
            " (figures below are from the last successful poll)"
        } else {
            ""
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                format!("down: {error}{stale}"),
                Style::default().fg(Color::Red),
            ))),
            line,
        );
        rest
    } else {
        inner
    };

    let market_rows = market_rows(node);
    let [inner, markets] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(u16::try_from(market_rows).unwrap_or(u16::MAX)),
    ])
    .areas(inner);
    if market_rows > 0 {
        frame.render_widget(markets_paragraph(node), markets);
    }

    let [figures, charts, by_members, by_rate] = Layout::horizontal([
        Constraint::Length(28),
        Constraint::Min(20),
        Constraint::Length(36),
        Constraint::Length(36),
    ])
    .areas(inner);
    frame.render_widget(figures_paragraph(node), figures);
    draw_sparklines(frame, charts, node);
    frame.render_widget(
        rooms_table("top rooms by members", &node.top_by_members),
        by_members,
    );
    frame.render_widget(
        rooms_table("top rooms by msg/s", &node.top_by_rate),
        by_rate,
    );
}

fn figures_paragraph(node: &NodeState) -> Paragraph<'static> {
    let Some(stats) = &node.stats else {
        return Paragraph::new("no data yet");
    };
    let mut rows: Vec<(String, String)> = vec![
        ("connections".into(), stats.connections.to_string()),
        ("rooms".into(), stats.rooms.to_string()),
        ("subscriptions".into(), stats.subscriptions.to_string()),
        ("in msg/s".into(), format_rate(node.rates.messages_in)),
        ("out msg/s".into(), format_rate(node.rates.messages_out)),
        ("deliveries/s".into(), format_rate(node.rates.deliveries)),
        ("publishes/s".into(), format_rate(node.rates.publishes)),
    ];
    rows.extend(
        stats
            .counters
            .iter()
            .map(|c| (c.label.to_owned(), c.value.to_string())),
    );
    if let Some(cluster) = &stats.cluster {
        rows.push(("cluster nodes".into(), cluster.nodes.to_string()));
        rows.push(("cluster conns".into(), cluster.connections.to_string()));
    }
    if let Some(up) = stats.uptime_secs {
        rows.push(("uptime".into(), format_uptime(up)));
    }
    let lines: Vec<Line<'static>> = rows
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<15}"), Style::default().fg(Color::Gray)),
                Span::styled(
                    format!("{v:>11}"),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
            ])
        })
        .collect();
    Paragraph::new(lines)
}

/// Panel rows the market lines of `node` take (0 without an arena).
pub fn market_rows(node: &NodeState) -> usize {
    node.stats
        .as_ref()
        .and_then(|s| s.arena.as_ref())
        .map_or(0, |a| 1 + a.markets.len())
}

/// `arena  orders 1234 (12.0/s) · trades 320 (3.0/s) · rejected 0`, then per market
/// `BTC-USD  last 101.25  bid 101.20  ask 101.30  volume 12.5`.
fn markets_paragraph(node: &NodeState) -> Paragraph<'static> {
    let Some(arena) = node.stats.as_ref().and_then(|s| s.arena.as_ref()) else {
        return Paragraph::new("");
    };
    let count = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let gray = Style::default().fg(Color::Gray);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(vec![
        Span::styled("arena  ", bold.fg(Color::Magenta)),
        Span::styled("orders ", gray),
        Span::styled(count(arena.orders_accepted), bold),
        Span::raw(format!(" ({}/s) · ", format_rate(node.rates.orders))),
        Span::styled("trades ", gray),
        Span::styled(count(arena.trades), bold),
        Span::raw(format!(" ({}/s) · ", format_rate(node.rates.trades))),
        Span::styled("rejected ", gray),
        Span::styled(count(arena.orders_rejected), bold),
    ])];
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    for m in &arena.markets {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<10}", m.symbol), bold.fg(Color::Cyan)),
            Span::styled(" last ", gray),
            Span::styled(format!("{:>12}", text(&m.last_price)), bold),
            Span::styled("  bid ", gray),
            Span::styled(
                format!("{:>12}", text(&m.best_bid)),
                Style::default().fg(Color::Green),
            ),
            Span::styled("  ask ", gray),
            Span::styled(
                format!("{:>12}", text(&m.best_ask)),
                Style::default().fg(Color::Red),
            ),
            Span::styled("  volume ", gray),
            Span::raw(text(&m.volume)),
        ]));
    }
    Paragraph::new(lines)
}

fn draw_sparklines(frame: &mut Frame<'_>, area: Rect, node: &NodeState) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    for (area, name, series, now) in [
        (top, "in", &node.messages_in, node.rates.messages_in),
        (bottom, "out", &node.messages_out, node.rates.messages_out),
    ] {
        let data = series.sparkline();
        let max = data.iter().copied().max().unwrap_or(0);
        let title = format!(" {name} {} msg/s · max {max} ", format_rate(now));
        frame.render_widget(
            Sparkline::default()
                .block(Block::default().borders(Borders::TOP).title(title))
                .data(&data)
                .max(max.max(1))
                .style(Style::default().fg(Color::Cyan)),
            area,
        );
    }
}

fn rooms_table(title: &'static str, rows: &[RoomRow]) -> Table<'static> {
    let header = Row::new(["room", "members", "msg/s"])
        .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let body: Vec<Row<'static>> = rows
        .iter()
        .map(|r| {
            Row::new([
                Cell::from(r.name.clone()),
                Cell::from(format!("{:>7}", r.members)),
                Cell::from(format!("{:>7}", format_rate(r.rate))),
            ])
        })
        .collect();
    Table::new(
        body,
        [
            Constraint::Min(12),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(
        Block::default()
            .borders(Borders::LEFT)
            .title(format!(" {title} ")),
    )
}

/// `12.5`, `1.2k`, `3.4M`, or `-` when unknown.
pub fn format_rate(rate: Option<f64>) -> String {
    match rate {
        None => "-".to_owned(),
        Some(r) if r >= 1_000_000.0 => format!("{:.1}M", r / 1_000_000.0),
        Some(r) if r >= 10_000.0 => format!("{:.1}k", r / 1_000.0),
        Some(r) => format!("{r:.1}"),
    }
}

fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h) {
        (0, 0) => format!("{m}m{s:02}s"),
        (0, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn format_interval(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_rate(None), "-");
        assert_eq!(format_rate(Some(12.34)), "12.3");
        assert_eq!(format_rate(Some(12_345.0)), "12.3k");
        assert_eq!(format_rate(Some(2_500_000.0)), "2.5M");
        assert_eq!(format_uptime(65), "1m05s");
        assert_eq!(format_uptime(3_720), "1h02m");
        assert_eq!(format_uptime(90_000), "1d01h");
        assert_eq!(
            format_interval(std::time::Duration::from_millis(500)),
            "0.5s"
        );
    }
}
