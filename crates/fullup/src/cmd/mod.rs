//! One module per subcommand; each exposes `Args` and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod admin;
pub mod bench;
pub mod listen;
pub mod logging;
pub mod secret;
pub mod secret_args;
pub mod serve;
pub mod sign;
pub mod verify;
