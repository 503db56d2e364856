//! The client against the real service (`fullup_server::app::Application`) on
//! 127.0.0.1:0 with a temporary SQLite file, and a receiver that answers 200.

mod api;
mod support;
