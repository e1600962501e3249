//! `acme-delegate client …`: the domain owner's side, for any acme-dns-compatible server.
//!
//! Design note: being written; see issue "Real certificates through real ACME clients".

use clap::Subcommand;

/// Client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an account for a domain and print the CNAME to create.
    Register,
}

/// Runs a client subcommand.
pub fn run(command: &ClientCommand) -> Result<(), String> {
    match command {
        ClientCommand::Register => Err("not built yet".into()),
    }
}
