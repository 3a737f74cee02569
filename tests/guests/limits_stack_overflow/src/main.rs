//! `limits_stack_overflow`: prints `recursing` to stdout, then recurses without bound
//! until the wasm call stack is exhausted (a trap). Each frame is small and lives on the
//! wasm stack, not on the shadow stack in linear memory.

fn depth(n: u64) -> u64 {
    // `black_box` hides from the compiler that this branch is never taken.
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    depth(n + 1).wrapping_mul(3).wrapping_add(n)
}

fn main() {
    println!("recursing");
    println!("{}", depth(0));
}
