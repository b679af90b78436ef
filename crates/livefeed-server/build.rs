//! Embeds the front-end libraries the pages use (hls.js, uPlot). They come from the npm
//! registry through `web/package.json` and its lock file (`npm ci`), never from the repository.
//! When they are missing, this runs `npm ci` in `web/`; if that is impossible, the pages still
//! build and say what to run.
use std::path::{Path, PathBuf};
use std::process::Command;

/// (file under web/node_modules, name in OUT_DIR)
const ASSETS: [(&str, &str); 3] = [
    ("hls.js/dist/hls.min.js", "hls.min.js"),
    ("uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
    ("uplot/dist/uPlot.min.css", "uPlot.min.css"),
];

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let modules = web.join("node_modules");
    println!(
        "cargo:rerun-if-changed={}",
        web.join("package-lock.json").display()
    );
    for (from, _) in ASSETS {
        println!("cargo:rerun-if-changed={}", modules.join(from).display());
    }
    if ASSETS.iter().any(|(from, _)| !modules.join(from).exists()) {
        install(&web);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (from, to) in ASSETS {
        if std::fs::copy(modules.join(from), out.join(to)).is_err() {
            println!("cargo:warning={from} is not installed (run: npm ci --prefix web); the pages will say so");
            let stub = format!("document.body.prepend('{from} was not installed at build time: run npm ci --prefix web and rebuild');");
            let stub = if to.ends_with(".css") {
                ""
            } else {
                stub.as_str()
            };
            std::fs::write(out.join(to), stub).expect("OUT_DIR is writable");
        }
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
