use std::process::ExitCode;

use clap::Parser;

/// Most threads the main runtime runs blocking work on (the job dispatcher's
/// reads and claims, the outbox folder's files): more would only wait for
/// one of the pool's connections, and each costs memory while it lives.
/// With 128 job slots, 32 of them took the all-in-one process's peak at 64
/// clients on PostgreSQL from 34.7 to 37.4 MiB; 16 kept it at 35.6
/// (docs/BENCHMARKS.md, round 15).
const MAIN_BLOCKING_THREADS: usize = 16;

/// At most four glibc malloc arenas for the whole process, unless
/// `MALLOC_ARENA_MAX` says otherwise. By default glibc gives threads that
/// allocate at the same moment arenas of their own, up to eight per core,
/// and each arena keeps the memory it once held: at 64 clients that was
/// about 2 MiB of a peak near the 40 MiB the service is held to. With four
/// the submission rates stayed within the benchmark's noise; with two,
/// SQLite's fell by about a tenth (its HTTP workers and its one writer
/// thread then wait for each other's arena). See docs/BENCHMARKS.md, round 14.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    const MALLOC_ARENAS: libc::c_int = 4;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets one of malloc's tunables, and this runs
        // first in main, before the process has any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
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
