//! `trap_at_start`: prints `about to trap` to stderr and executes `unreachable`.

fn main() {
    eprintln!("about to trap");
    core::arch::wasm32::unreachable();
}
