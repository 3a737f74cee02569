//! `cli_ticker`: prints `tick {i}` to stdout every 100 ms, `$TICKS` times (default 10;
//! `0` means forever), then `ticker: done` to stderr and exits 0.

fn main() {
    let ticks = std::env::var("TICKS")
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(10);
    let mut i = 0u64;
    while ticks == 0 || i < ticks {
        println!("tick {i}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        i += 1;
    }
    eprintln!("ticker: done");
}
