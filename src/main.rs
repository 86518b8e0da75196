//! The `sluice` binary: a thin shell around [`sluice::cli`].

/// mimalloc instead of the C library's allocator: fewer instructions per
/// allocation on every path (README, "Cost per write").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = sluice::cli::Cli::parse_with_defaults();
    if let Err(e) = sluice::cli::run(cli) {
        eprintln!("sluice: {e:#}");
        let code = e
            .downcast_ref::<sluice::cli::admin::AdminError>()
            .map_or(1, |a| a.exit_code());
        std::process::exit(code);
    }
}
