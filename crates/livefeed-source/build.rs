//! Tells the code whether OpenH264 was built with its assembly. openh264-sys2 compiles its
//! assembly with `nasm` when it finds one (honouring `NASM` and `OPENH264_NO_ASM`) and silently
//! builds without it otherwise, which encodes about three times slower. The same test is made
//! here, so `encoder::OPENH264_ASSEMBLY` can say so at run time and the demo's first line can
//! tell the user how to fix it.
fn main() {
    let x86 = matches!(
        std::env::var("CARGO_CFG_TARGET_ARCH").as_deref(),
        Ok("x86_64") | Ok("x86")
    );
    let disabled = std::env::var_os("OPENH264_NO_ASM").is_some();
    let nasm = std::env::var_os("NASM").unwrap_or_else(|| "nasm".into());
    let found = std::process::Command::new(nasm)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    // Only x86 needs nasm; other targets' OpenH264 builds use no assembly of this kind.
    let assembly = !x86 || (found && !disabled);
    if x86 && !found {
        println!(
            "cargo:warning=nasm not found: OpenH264 builds without assembly (3x slower encode). Install it: apt-get install nasm"
        );
    }
    println!(
        "cargo:rustc-env=LIVEFEED_OPENH264_ASSEMBLY={}",
        if assembly { "yes" } else { "no" }
    );
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=NASM");
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
}
