//! `config_echo`: prints what `wasi:config/store` holds — `config {key}={value}` for each
//! entry of `get-all`, sorted, then `get GREETING={value}` (`<none>` when unset) from
//! `get` — to stdout, and exits 0. If the store answers with an error, prints
//! `config_echo: {call} failed: {error:?}` to stderr and exits 1.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "wasi:config/imports@0.2.0-rc.1",
    });
}

use bindings::wasi::config::store;

fn main() {
    let mut all = match store::get_all() {
        Ok(all) => all,
        Err(e) => fail("get-all", &e),
    };
    all.sort();
    for (key, value) in all {
        println!("config {key}={value}");
    }
    match store::get("GREETING") {
        Ok(Some(value)) => println!("get GREETING={value}"),
        Ok(None) => println!("get GREETING=<none>"),
        Err(e) => fail("get", &e),
    }
}

fn fail(call: &str, error: &store::Error) -> ! {
    eprintln!("config_echo: {call} failed: {error:?}");
    std::process::exit(1);
}
