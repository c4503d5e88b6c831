use std::process::ExitCode;

// glibc's malloc was 10 % of the server's CPU under load (BENCHMARKS.md); mimalloc's
// thread-local free lists make the many small per-request allocations cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tokenmint::cli::main()
}
