//! `limits_memory_bomb`: allocates and touches 1 MiB after 1 MiB, printing
//! `allocated {n} MiB` to stdout after every 8 MiB, until an allocation fails — which
//! aborts (a trap). Never exits normally under a memory limit.

fn main() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xA5; 1 << 20]);
        if hoard.len().is_multiple_of(8) {
            println!("allocated {} MiB", hoard.len());
        }
    }
}
