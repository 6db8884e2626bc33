//! A small trading bot: it follows its `orders` and `portfolio` streams (Ed25519
//! challenge), places a signed limit bid on BTC-USD every half second and cancels the
//! previous one, printing what the streams report.
//!
//! ```sh
//! roomcast keygen --out acme          # register acme.pub in --collectives
//! cargo run -p roomcast-client --example rust_bot -- ws://127.0.0.1:8080 acme acme.pem 10
//! ```
//!
//! Prints one line per stream event and ends with `done placed=N cancelled=M`.

use std::time::Duration;

use roomcast_client::arena::{follow_stream, ArenaRest, OrdersState, PortfolioState};
use roomcast_client::{ClientOptions, Ed25519Credentials};
use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, collective, pem_path, rest @ ..] = args.as_slice() else {
        eprintln!("usage: rust_bot WS_URL COLLECTIVE KEY.pem [SECONDS]");
        std::process::exit(2);
    };
    let seconds: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let pem = std::fs::read_to_string(pem_path)?;
    let key = Ed25519Credentials::from_pem(collective.as_str(), &pem)?;

    let options = ClientOptions::default();
    let (orders_client, mut orders) =
        follow_stream::<OrdersState>(url, key.clone(), "orders", options.clone()).await?;
    let (portfolio_client, mut portfolio) =
        follow_stream::<PortfolioState>(url, key.clone(), "portfolio", options).await?;
    orders.until_ready().await?;
    portfolio.until_ready().await?;
    println!(
        "ready open_orders={} usd_available={}",
        orders.state().open().count(),
        portfolio.state().available("USD").unwrap_or("0")
    );

    let rest = ArenaRest::new(url, key);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let deadline = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(deadline);
    let (mut placed, mut cancelled, mut last): (u32, u32, Option<u64>) = (0, 0, None);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tick.tick() => {
                if let Some(id) = last.take() {
                    match rest.cancel_order(id).await {
                        Ok(_) => cancelled += 1,
                        Err(e) => println!("cancel {id}: {e}"),
                    }
                }
                // A bid far below the market: it rests on the book until cancelled.
                let price = format!("{}.00", 1000 + placed % 50);
                let order = json!({"symbol": "BTC-USD", "side": "buy", "type": "limit",
                                   "quantity": "0.01", "price": price});
                match rest.place_order(&order).await {
                    Ok(o) => {
                        placed += 1;
                        last = o.get("order_id").and_then(Value::as_u64);
                    }
                    Err(e) => println!("place: {e}"),
                }
            }
            Some(ev) = orders.next() => {
                let data = &ev["data"];
                println!("orders {} id={} status={}", ev["type"], data["order_id"], data["status"]);
            }
            Some(ev) = portfolio.next() => {
                let data = &ev["data"];
                println!("portfolio {} {}", ev["type"], data);
            }
        }
    }
    orders_client.close().await;
    portfolio_client.close().await;
    println!("done placed={placed} cancelled={cancelled}");
    Ok(())
}
