//! The collectives-file (and admin API) fields that fund an account: `starting_cash`
//! (integer cents of the primary quote currency, ≥ 0) and `starting_positions`
//! (`{"BTC-USD": "10"}`: decimal strings of known symbols, aligned to their lot size).

use serde_json::{Map, Value};

use crate::account::Funding;
use crate::error::FundingError;
use crate::instrument::Instruments;

/// Validates the funding fields of a collective. Absent fields fund nothing; other fields
/// are ignored (they belong to the caller).
///
/// # Errors
/// [`FundingError`] naming the bad field.
pub fn parse_funding(
    instruments: &Instruments,
    fields: &Map<String, Value>,
) -> Result<Funding, FundingError> {
    let cash_cents = match fields.get("starting_cash") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_u64().ok_or(FundingError::BadCash)?,
        Some(_) => return Err(FundingError::BadCash),
    };
    if instruments
        .cents_to_units(cash_cents)
        .is_none_or(|u| u > i128::from(i64::MAX))
    {
        return Err(FundingError::BadCash);
    }
    let mut funding = Funding {
        cash_cents,
        ..Funding::default()
    };
    match fields.get("starting_positions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (symbol, value) in map {
                let ins = instruments
                    .get(symbol)
                    .ok_or_else(|| FundingError::UnknownSymbol(symbol.clone()))?;
                let bad = || FundingError::BadQuantity {
                    symbol: symbol.clone(),
                    value: value.to_string(),
                };
                let Value::String(s) = value else {
                    return Err(bad());
                };
                let lots = if crate::decimal::parse_units(s, ins.qty_scale) == Ok(0) {
                    0
                } else {
                    ins.parse_quantity(s).map_err(|_| bad())?.0
                };
                if lots > (i64::MAX as u64) {
                    return Err(bad());
                }
                funding.positions.insert(symbol.clone(), lots);
            }
        }
        Some(_) => return Err(FundingError::BadPositions),
    }
    Ok(funding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ArenaConfig;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn parses_cash_and_positions() {
        let ins = ArenaConfig::default().validate().expect("valid");
        let f = parse_funding(
            &ins,
            &fields(serde_json::json!({"starting_cash": 1_000_000, "starting_positions": {"BTC-USD": "10", "ETH-USD": "0"}, "public_key": "x"})),
        )
        .expect("valid");
        assert_eq!(f.cash_cents, 1_000_000);
        assert_eq!(f.positions.get("BTC-USD"), Some(&100_000));
        assert_eq!(f.positions.get("ETH-USD"), Some(&0));
        assert_eq!(parse_funding(&ins, &Map::new()), Ok(Funding::default()));
    }

    #[test]
    fn refuses_bad_funding() {
        let ins = ArenaConfig::default().validate().expect("valid");
        let bad = |v: Value| parse_funding(&ins, &fields(v));
        assert_eq!(
            bad(serde_json::json!({"starting_cash": -1})),
            Err(FundingError::BadCash)
        );
        assert_eq!(
            bad(serde_json::json!({"starting_cash": 1.5})),
            Err(FundingError::BadCash)
        );
        assert_eq!(
            bad(serde_json::json!({"starting_cash": "100"})),
            Err(FundingError::BadCash)
        );
        assert_eq!(
            bad(serde_json::json!({"starting_cash": u64::MAX})),
            Err(FundingError::BadCash)
        );
        assert_eq!(
            bad(serde_json::json!({"starting_positions": ["x"]})),
            Err(FundingError::BadPositions)
        );
        assert_eq!(
            bad(serde_json::json!({"starting_positions": {"DOGE": "1"}})),
            Err(FundingError::UnknownSymbol("DOGE".into()))
        );
        assert!(matches!(
            bad(serde_json::json!({"starting_positions": {"BTC-USD": 1}})),
            Err(FundingError::BadQuantity { .. })
        ));
        assert!(matches!(
            bad(serde_json::json!({"starting_positions": {"BTC-USD": "0.00001"}})),
            Err(FundingError::BadQuantity { .. })
        ));
        assert!(matches!(
            bad(serde_json::json!({"starting_positions": {"BTC-USD": "-1"}})),
            Err(FundingError::BadQuantity { .. })
        ));
    }
}
