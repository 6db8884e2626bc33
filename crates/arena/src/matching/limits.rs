//! [`BookLimits`]: the bounds that keep one order book's memory and arithmetic in range.
//!
//! A book holds at most `max_orders` resting orders (its order slab, id index and price
//! levels never grow past that), and accepts at most `max_order_quantity` lots per order.
//! Together they make the book's sums safe: [`BookLimits::new`] only accepts limits with
//! `max_orders * max_order_quantity <= u64::MAX`, so no level total, side total or fill sum
//! can overflow a `u64`, whatever the orders are.

use super::types::Quantity;

/// Default [`BookLimits::max_orders`].
pub const DEFAULT_MAX_ORDERS: usize = 1_000_000;

/// Default [`BookLimits::max_order_quantity`]: 10^12 lots.
pub const DEFAULT_MAX_ORDER_QUANTITY: Quantity = Quantity(1_000_000_000_000);

/// Resting order slots are `u32` indexes, one value of which marks "none".
const MAX_SLOTS: usize = (u32::MAX - 1) as usize;

/// Validated bounds of one [`OrderBook`](super::OrderBook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookLimits {
    max_orders: usize,
    max_order_quantity: Quantity,
}

/// Why [`BookLimits::new`] refused a pair of limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLimits {
    /// A limit is 0.
    #[error("book limits must be above 0")]
    Zero,
    /// More resting orders than the book can index.
    #[error("max_orders {max_orders} is above {MAX_SLOTS}")]
    TooManyOrders {
        /// The requested limit.
        max_orders: usize,
    },
    /// `max_orders * max_order_quantity` does not fit a `u64`, so level totals could overflow.
    #[error("max_orders {max_orders} times max_order_quantity {max_order_quantity} overflows u64")]
    TotalOverflow {
        /// The requested order limit.
        max_orders: usize,
        /// The requested quantity limit.
        max_order_quantity: Quantity,
    },
}

impl BookLimits {
    /// Checks and builds the limits.
    pub fn new(
        max_orders: usize,
        max_order_quantity: Quantity,
    ) -> Result<BookLimits, InvalidLimits> {
        if max_orders == 0 || max_order_quantity.0 == 0 {
            return Err(InvalidLimits::Zero);
        }
        if max_orders > MAX_SLOTS {
            return Err(InvalidLimits::TooManyOrders { max_orders });
        }
        let total = (max_orders as u128).checked_mul(u128::from(max_order_quantity.0));
        if total.is_none_or(|t| t > u128::from(u64::MAX)) {
            return Err(InvalidLimits::TotalOverflow {
                max_orders,
                max_order_quantity,
            });
        }
        Ok(BookLimits {
            max_orders,
            max_order_quantity,
        })
    }

    /// The most orders that may rest in the book at once.
    pub const fn max_orders(&self) -> usize {
        self.max_orders
    }

    /// The largest quantity one order may have.
    pub const fn max_order_quantity(&self) -> Quantity {
        self.max_order_quantity
    }
}

impl Default for BookLimits {
    /// [`DEFAULT_MAX_ORDERS`] and [`DEFAULT_MAX_ORDER_QUANTITY`].
    fn default() -> BookLimits {
        BookLimits {
            max_orders: DEFAULT_MAX_ORDERS,
            max_order_quantity: DEFAULT_MAX_ORDER_QUANTITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let d = BookLimits::default();
        assert_eq!(
            BookLimits::new(d.max_orders(), d.max_order_quantity()),
            Ok(d)
        );
    }

    #[test]
    fn refuses_zero_and_overflowing_limits() {
        assert_eq!(BookLimits::new(0, Quantity(10)), Err(InvalidLimits::Zero));
        assert_eq!(BookLimits::new(10, Quantity(0)), Err(InvalidLimits::Zero));
        assert_eq!(
            BookLimits::new(2, Quantity(u64::MAX)),
            Err(InvalidLimits::TotalOverflow {
                max_orders: 2,
                max_order_quantity: Quantity(u64::MAX)
            })
        );
        assert!(BookLimits::new(1, Quantity(u64::MAX)).is_ok());
        assert!(matches!(
            BookLimits::new(usize::MAX, Quantity(1)),
            Err(InvalidLimits::TooManyOrders { .. })
        ));
    }
}
