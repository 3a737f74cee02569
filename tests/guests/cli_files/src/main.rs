//! `cli_files`: works in the preopened directory `/data`: prints the content of
//! `/data/input.txt` as `input: {content}` (or `input: <missing>`), writes
//! `written by cli_files` to `/data/output.txt`, then tries to read `/etc/hostname`
//! (outside any preopen) and prints `outside: denied` or `outside: readable`.
//! Exits 0, or 1 when the write fails.

fn main() {
    match std::fs::read_to_string("/data/input.txt") {
        Ok(content) => println!("input: {}", content.trim_end()),
        Err(_) => println!("input: <missing>"),
    }
    let code = match std::fs::write("/data/output.txt", "written by cli_files\n") {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("cli_files: write failed: {err}");
            1
        }
    };
    match std::fs::read_to_string("/etc/hostname") {
        Ok(_) => println!("outside: readable"),
        Err(_) => println!("outside: denied"),
    }
    std::process::exit(code);
}
