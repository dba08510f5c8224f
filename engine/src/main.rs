//! `chatd`: the chat server binary. See PROTOCOL.md "Starting the server".

use chat_engine::config::{Cli, Command, Config};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    if let Some(Command::GenCert { hosts, cert, key }) = cli.command {
        match chat_net::tls::generate_self_signed(&hosts) {
            Ok((cert_pem, key_pem)) => {
                let written =
                    std::fs::write(&cert, cert_pem).and_then(|_| std::fs::write(&key, key_pem));
                if let Err(e) = written {
                    eprintln!("chatd gen-cert: {e}");
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
                eprintln!("chatd gen-cert: {e}");
                std::process::exit(1);
            }
        }
    }
    let config = match Config::resolve(cli.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatd: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = chat_engine::node::run(config) {
        eprintln!("chatd: {e}");
        std::process::exit(1);
    }
}
