//! `cli_hello`: prints `hello from skiff`, each argument and each environment variable
//! on its own line to stdout, one line to stderr, and exits with `$EXIT_CODE` (0 if unset
//! or unparsable).

fn main() {
    println!("hello from skiff");
    for (i, arg) in std::env::args().enumerate() {
        println!("arg[{i}]={arg}");
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        println!("env {k}={v}");
    }
    eprintln!("cli_hello: done");
    let code = std::env::var("EXIT_CODE")
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
        .unwrap_or(0);
    std::process::exit(code);
}
