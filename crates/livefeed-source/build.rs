//! Warns when `nasm` is missing: OpenH264 then silently builds without its assembly and encodes
//! about three times slower. `.ci/run` and the README's commands install it.
fn main() {
    let found = std::process::Command::new("nasm")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!(
            "cargo:warning=nasm not found: OpenH264 builds without assembly (3x slower encode). Install it: apt-get install nasm"
        );
    }
    println!("cargo:rerun-if-env-changed=PATH");
}
