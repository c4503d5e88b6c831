use std::process::ExitCode;

fn main() -> ExitCode {
    tokenmint::cli::main()
}
