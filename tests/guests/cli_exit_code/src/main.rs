//! `cli_exit_code`: prints `exiting with {n}` to stdout and exits with `n` = `$EXIT_CODE`
//! (0–255, default 0) through `wasi:cli/exit.exit-with-code` — the one way a WASI 0.2
//! guest reports a code other than 0 or 1 (`std::process::exit` can only say "failed");
//! stable since WASI 0.2.12.

fn main() {
    let code = std::env::var("EXIT_CODE")
        .ok()
        .and_then(|c| c.parse::<u8>().ok())
        .unwrap_or(0);
    println!("exiting with {code}");
    wasip2::cli::exit::exit_with_code(code);
}
