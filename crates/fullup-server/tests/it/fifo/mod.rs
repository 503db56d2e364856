//! Ordered (FIFO) webhooks (issue 15, item 1): the store's rules on both stores
//! ([`store`]), and the real service delivering to a receiver that fails now and then,
//! on one node of either store or on two PostgreSQL nodes ([`delivery`]).

mod delivery;
mod store;
