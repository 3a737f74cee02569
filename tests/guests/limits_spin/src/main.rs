//! `limits_spin`: prints `spinning` to stdout, then loops forever without calling the
//! host. Only an epoch deadline, the kill switch or a CPU limit stops or slows it.

fn main() {
    println!("spinning");
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
