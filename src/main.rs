//! The `acme-delegate` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    acme_delegate::cli::run()
}
