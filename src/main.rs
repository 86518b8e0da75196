//! The `sluice` binary: a thin shell around [`sluice::cli`].

use clap::Parser;

fn main() {
    let cli = sluice::cli::Cli::parse();
    if let Err(e) = sluice::cli::run(cli) {
        eprintln!("sluice: {e:#}");
        std::process::exit(1);
    }
}
