//! Embeds the front-end libraries the pages use. They come from the npm registry through
//! `web/package.json` and its lock file (`npm ci`), never from the repository. When they are
//! missing, this runs `npm ci` in `web/`; if that is impossible, the page still builds and
//! says what to run.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let hls = web.join("node_modules/hls.js/dist/hls.min.js");
    println!(
        "cargo:rerun-if-changed={}",
        web.join("package-lock.json").display()
    );
    println!("cargo:rerun-if-changed={}", hls.display());
    if !hls.exists() {
        install(&web);
    }
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("hls.min.js");
    if std::fs::copy(&hls, &out).is_err() {
        println!("cargo:warning=hls.js is not installed (run: npm ci --prefix web); the player page will say so");
        let stub = "document.getElementById('status').textContent = 'hls.js was not installed at build time: run npm ci --prefix web and rebuild';";
        std::fs::write(&out, stub).expect("OUT_DIR is writable");
    }
}

fn install(web: &Path) {
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--omit=dev"])
        .current_dir(web)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("cargo:warning=npm ci in web/ failed or npm is missing");
    }
}
