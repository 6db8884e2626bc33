//! A price level's FIFO of resting orders, and the slab those orders live in.
//!
//! Every resting order is a [`Node`] in one [`OrderSlab`] (a `Vec` plus a free list), and
//! each [`Level`] threads its nodes into a doubly linked list in arrival order: the head is
//! the oldest order, the next to trade. Linking by slab index instead of keeping a queue per
//! level is what makes a cancel exact and O(1) once the order's slot is known: the node is
//! unlinked on the spot, with no tombstone left behind, so a level's cached `total` and
//! `count` are always the sums over its live orders. It also means a level owns no heap
//! memory: creating and dropping levels as prices come and go allocates nothing, and freed
//! slots are reused, so the slab never holds more nodes than the book's peak resting count.
//!
//! The slab does not know about ids or prices beyond storing them; the book keeps the
//! id → slot index and the price → level ladders.

use super::types::{AccountId, OrderId, Price, RestingOrder, Side};

/// "No node": the end of a list.
pub(super) const NIL: u32 = u32::MAX;

/// One resting order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) id: OrderId,
    pub(super) account: AccountId,
    pub(super) side: Side,
    pub(super) price: Price,
    /// Lots left; above 0 while the node is linked.
    pub(super) remaining: u64,
    prev: u32,
    next: u32,
}

impl Node {
    /// A node not yet linked into a level.
    pub(super) const fn new(
        id: OrderId,
        account: AccountId,
        side: Side,
        price: Price,
        remaining: u64,
    ) -> Node {
        Node {
            id,
            account,
            side,
            price,
            remaining,
            prev: NIL,
            next: NIL,
        }
    }

    /// The order as the public API reports it.
    pub(super) const fn resting(&self) -> RestingOrder {
        RestingOrder {
            id: self.id,
            account: self.account,
            side: self.side,
            price: self.price,
            quantity: super::types::Quantity(self.remaining),
        }
    }
}

/// The orders resting at one price, oldest first, with their sum cached.
#[derive(Debug, Clone, Copy)]
pub(super) struct Level {
    head: u32,
    tail: u32,
    /// Sum of `remaining` over the linked nodes.
    total: u64,
    /// Number of linked nodes.
    count: u32,
}

impl Level {
    /// A level with no orders.
    pub(super) const fn empty() -> Level {
        Level {
            head: NIL,
            tail: NIL,
            total: 0,
            count: 0,
        }
    }

    /// The oldest order's slot, if any.
    pub(super) const fn head(&self) -> Option<u32> {
        if self.head == NIL {
            None
        } else {
            Some(self.head)
        }
    }

    /// Lots resting at this price.
    pub(super) const fn total(&self) -> u64 {
        self.total
    }

    /// Orders resting at this price.
    #[cfg(test)]
    pub(super) const fn count(&self) -> u32 {
        self.count
    }

    /// True when no order rests here (the book then removes the level).
    pub(super) const fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Storage for every resting order of one book.
#[derive(Debug, Clone, Default)]
pub(super) struct OrderSlab {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

impl OrderSlab {
    /// The node in `slot`. Slots come from [`OrderSlab::push_back`] and stay valid until
    /// [`OrderSlab::unlink`].
    pub(super) fn node(&self, slot: u32) -> &Node {
        &self.nodes[slot as usize]
    }

    /// Stores `node` and appends it to `level` (it becomes the newest order there); returns
    /// its slot. The book's limits keep the slot count below [`NIL`].
    pub(super) fn push_back(&mut self, level: &mut Level, mut node: Node) -> u32 {
        node.prev = level.tail;
        node.next = NIL;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        if level.tail == NIL {
            level.head = slot;
        } else {
            self.nodes[level.tail as usize].next = slot;
        }
        level.tail = slot;
        level.total += node.remaining;
        level.count += 1;
        slot
    }

    /// Takes `quantity` (less than what is left) off the order in `slot`, which stays in
    /// place: a partial fill keeps its time priority.
    pub(super) fn reduce(&mut self, level: &mut Level, slot: u32, quantity: u64) {
        let node = &mut self.nodes[slot as usize];
        debug_assert!(quantity < node.remaining, "reduce must leave something");
        node.remaining -= quantity;
        level.total -= quantity;
    }

    /// Removes the order in `slot` from `level` and frees the slot; returns the order as it
    /// was.
    pub(super) fn unlink(&mut self, level: &mut Level, slot: u32) -> Node {
        let node = self.nodes[slot as usize];
        if node.prev == NIL {
            level.head = node.next;
        } else {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next == NIL {
            level.tail = node.prev;
        } else {
            self.nodes[node.next as usize].prev = node.prev;
        }
        level.total -= node.remaining;
        level.count -= 1;
        self.free.push(slot);
        node
    }

    /// The orders of `level`, oldest first.
    pub(super) fn iter<'a>(&'a self, level: &Level) -> impl Iterator<Item = &'a Node> + 'a {
        let mut slot = level.head;
        std::iter::from_fn(move || {
            if slot == NIL {
                return None;
            }
            let node = &self.nodes[slot as usize];
            slot = node.next;
            Some(node)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, qty: u64) -> Node {
        Node::new(OrderId(id), AccountId(1), Side::Buy, Price(10), qty)
    }

    fn ids(slab: &OrderSlab, level: &Level) -> Vec<u64> {
        slab.iter(level).map(|n| n.id.0).collect()
    }

    #[test]
    fn fifo_order_and_exact_totals_through_unlinks() {
        let mut slab = OrderSlab::default();
        let mut level = Level::empty();
        let a = slab.push_back(&mut level, node(1, 5));
        let b = slab.push_back(&mut level, node(2, 7));
        let c = slab.push_back(&mut level, node(3, 1));
        assert_eq!(ids(&slab, &level), [1, 2, 3]);
        assert_eq!((level.total(), level.count()), (13, 3));

        // Middle, then head, then tail.
        assert_eq!(slab.unlink(&mut level, b).id, OrderId(2));
        assert_eq!(ids(&slab, &level), [1, 3]);
        assert_eq!((level.total(), level.count()), (6, 2));
        slab.reduce(&mut level, a, 2);
        assert_eq!(level.total(), 4);
        slab.unlink(&mut level, a);
        assert_eq!(level.head(), Some(c));
        slab.unlink(&mut level, c);
        assert!(level.is_empty());
        assert_eq!((level.head(), level.total()), (None, 0));

        // Freed slots are reused.
        let d = slab.push_back(&mut level, node(4, 1));
        assert!([a, b, c].contains(&d));
        assert_eq!(slab.nodes.len(), 3);
        assert_eq!(ids(&slab, &level), [4]);
    }
}
