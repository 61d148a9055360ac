use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lethe::cli::Cli::parse();
    match actix_web::rt::System::new().block_on(lethe::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lethe: {e:#}");
            ExitCode::from(2)
        }
    }
}
