//! The `sandbox` binary: the command line ([`sandbox::main`]) with the standard host functions.
//! An operator who exposes more to scripts builds this same file with their registry instead
//! (README, "Exposing host functions").

use std::process::ExitCode;

fn main() -> ExitCode {
    sandbox::main(sandbox::host::standard)
}
