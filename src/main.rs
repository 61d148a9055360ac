use std::process::ExitCode;

use clap::Parser;

/// Most threads the main runtime runs database work on (the job dispatcher's
/// jobs): more would only wait for one of the pool's connections, and each
/// idle one kept costs memory.
const MAIN_BLOCKING_THREADS: usize = 32;

fn main() -> ExitCode {
    let cli = lethe::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAIN_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lethe: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::with_tokio_rt(|| runtime).block_on(lethe::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lethe: {e:#}");
            ExitCode::from(2)
        }
    }
}
