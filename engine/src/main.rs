//! `chatd`: the chat server binary. See PROTOCOL.md "Starting the server".

use chat_engine::config::{Cli, Command, Config};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log lines to stderr; `RUST_LOG` (e.g. `chatd=debug`) picks the level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}

fn main() {
    init_tracing();
    let cli = Cli::parse();
    if let Some(Command::GenCert { hosts, cert, key }) = cli.command {
        match chat_net::tls::generate_self_signed(&hosts) {
            Ok((cert_pem, key_pem)) => {
                let written =
                    std::fs::write(&cert, cert_pem).and_then(|_| std::fs::write(&key, key_pem));
                if let Err(e) = written {
                    tracing::error!("gen-cert: {e}");
                    std::process::exit(1);
                }
                println!(
                    "wrote {} and {} (self-signed, for development: {})",
                    cert.display(),
                    key.display(),
                    hosts.join(", ")
                );
                return;
            }
            Err(e) => {
                tracing::error!("gen-cert: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Some(Command::ClusterStatus { ops }) = &cli.command {
        let ok = chat_engine::cluster::status_cmd::run(ops);
        std::process::exit(if ok { 0 } else { 1 });
    }
    let config = match Config::resolve(cli.flags) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = chat_engine::node::run::check_cluster(&config) {
        tracing::error!("{e}");
        std::process::exit(2);
    }
    if let Err(e) = chat_engine::node::run::run(config) {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}
