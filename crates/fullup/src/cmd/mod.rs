//! One module per subcommand; each exposes `Args` and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod admin;
pub mod admin_token;
pub mod bench;
pub mod completions;
pub mod delivery;
pub mod event;
pub mod listen;
pub mod logging;
pub mod remote;
pub mod secret;
pub mod secret_args;
pub mod serve;
pub mod sign;
pub mod site;
pub mod verify;
pub mod wait_ready;
pub mod webhook;
