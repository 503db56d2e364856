//! One module per subcommand; each exposes `Args` and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod listen;
pub mod secret;
pub mod serve;
pub mod sign;
pub mod verify;
