//! Property tests of both signature schemes, through the public API only.

mod fullup_scheme;
mod no_alloc;
mod standard_scheme;
mod strategies;
