//! Vigil's build pipeline, in Rust so that it needs nothing but cargo:
//!
//! - `cargo xtask build`: the wasm bundle (`hydrate`, profile `wasm-release`), wasm-bindgen at
//!   exactly the version in Cargo.lock (linked in as a library), wasm-opt from the npm
//!   `binaryen` package when it is installed, the stylesheet, then the `vigil` and
//!   `vigil-agent` binaries (debug).
//! - `cargo xtask dev`: the same with a debug wasm bundle (fast rebuilds), then runs `vigil serve`.
//! - `cargo xtask dist`: release binaries and the site in `dist/`.
//! - `cargo xtask test [ARGS]`: `build` (site and binaries), then `cargo test --workspace ARGS`.
//! - `cargo xtask clippy`: clippy on the workspace and on the frontend's `hydrate` build.
//! - `cargo xtask layers`: checks the backend's layering (see [`layers`]).
//! - `cargo xtask demo`: `build`, then a backend, an agent tailing a demo log file, demo traffic
//!   and (when installed) a Prometheus scraping the backend.
//!
//! Nothing here downloads anything.

mod demo;
mod layers;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const OUTPUT_NAME: &str = "vigil";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The frontend as the browser gets it: the library, for wasm32, with `hydrate` only.
const HYDRATE_BUILD: [&str; 8] =
    ["--package", "vigil-frontend", "--lib", "--target", WASM_TARGET, "--no-default-features", "--features", "hydrate"];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let workspace = Workspace::locate()?;
    match command.as_str() {
        "build" => {
            workspace.build_site(WasmProfile::Release)?;
            workspace.build_binaries(false)?;
        }
        "dev" => {
            workspace.build_site(WasmProfile::Dev)?;
            workspace.cargo(&["run", "--package", "vigil-backend", "--bin", "vigil", "--", "serve"])?;
        }
        "dist" => workspace.dist()?,
        "test" => {
            workspace.build_site(WasmProfile::Release)?;
            // The agent's tests run the real binaries.
            workspace.build_binaries(false)?;
            let mut cargo_args = vec!["test", "--workspace"];
            cargo_args.extend(rest.iter().map(String::as_str));
            workspace.cargo(&cargo_args)?;
        }
        "clippy" => {
            workspace.cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            workspace.cargo(&[&["clippy"][..], &HYDRATE_BUILD, &["--", "-D", "warnings"]].concat())?;
        }
        "layers" => layers::run(&workspace.root)?,
        "demo" => {
            workspace.build_site(WasmProfile::Release)?;
            workspace.build_binaries(false)?;
            demo::run(&workspace)?;
        }
        _ => bail!("usage: cargo xtask build|dev|dist|test [cargo test args]|clippy|layers|demo"),
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WasmProfile {
    Dev,
    Release,
}

pub struct Workspace {
    root: PathBuf,
    target_dir: PathBuf,
}

impl Workspace {
    fn locate() -> anyhow::Result<Self> {
        // At run time, not compile time: one build of xtask may serve several checkouts that
        // share a target directory.
        let manifest_dir =
            std::env::var_os("CARGO_MANIFEST_DIR").context("run xtask through cargo: cargo xtask ...")?;
        let root = Path::new(&manifest_dir).parent().context("xtask lives in the workspace")?.to_owned();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        Ok(Self { root, target_dir })
    }

    /// Where the site (the `pkg/` folder with the bundle and the stylesheet) is written.
    pub fn site_root(&self) -> PathBuf {
        self.root.join("target").join("site")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn binary(&self, name: &str, release: bool) -> PathBuf {
        self.target_dir.join(if release { "release" } else { "debug" }).join(name)
    }

    fn cargo(&self, args: &[&str]) -> anyhow::Result<()> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        eprintln!("xtask: cargo {}", args.join(" "));
        let status = Command::new(cargo)
            .args(args)
            .current_dir(&self.root)
            // Leptos reads this at compile time to name the bundle; our names come from config.
            .env_remove("LEPTOS_OUTPUT_NAME")
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo {} failed with {status}", args.join(" "));
        }
        Ok(())
    }

    fn build_site(&self, profile: WasmProfile) -> anyhow::Result<()> {
        let (profile_flag, profile_dir) = match profile {
            WasmProfile::Dev => ("dev", "debug"),
            WasmProfile::Release => ("wasm-release", "wasm-release"),
        };
        self.cargo(&[&["build"][..], &HYDRATE_BUILD, &["--profile", profile_flag]].concat())?;
        let wasm = self.target_dir.join(WASM_TARGET).join(profile_dir).join("vigil_frontend.wasm");
        let pkg = self.site_root().join("pkg");
        std::fs::create_dir_all(&pkg).with_context(|| format!("cannot create {}", pkg.display()))?;
        let bundle = pkg.join(format!("{OUTPUT_NAME}_bg.wasm"));
        // The bundle is made from the compiled wasm alone: when that has not changed, the
        // bundle of the last build stands (wasm-bindgen and wasm-opt take minutes).
        let source =
            format!("{} {}", if profile == WasmProfile::Release { "release" } else { "dev" }, file_hash(&wasm)?);
        let stamp = pkg.join(".bundle-source");
        let current = std::fs::read_to_string(&stamp).unwrap_or_default();
        if current == source && bundle.exists() && pkg.join(format!("{OUTPUT_NAME}.js")).exists() {
            eprintln!("xtask: the bundle is up to date with {}", wasm.display());
        } else {
            eprintln!("xtask: wasm-bindgen {} -> {}", wasm.display(), pkg.display());
            wasm_bindgen_cli_support::Bindgen::new()
                .input_path(&wasm)
                .web(true)?
                .typescript(false)
                .out_name(OUTPUT_NAME)
                .generate(&pkg)
                .context("wasm-bindgen failed")?;
            if profile == WasmProfile::Release {
                self.shrink(&bundle)?;
            }
            std::fs::write(&stamp, &source)?;
        }
        let size = std::fs::metadata(&bundle).map(|metadata| metadata.len()).unwrap_or_default();
        eprintln!("xtask: {} is {} KiB", bundle.display(), size / 1024);
        std::fs::copy(self.root.join("style").join("vigil.css"), pkg.join("vigil.css"))
            .context("cannot copy the stylesheet")?;
        // The chart library of the metric charts, from npm (`npm ci`), served next to the bundle.
        let uplot = self.root.join("node_modules").join("uplot").join("dist");
        for (from, to) in [("uPlot.iife.min.js", "uplot.js"), ("uPlot.min.css", "uplot.css")] {
            std::fs::copy(uplot.join(from), pkg.join(to))
                .with_context(|| format!("cannot copy {} from npm's uplot: run `npm ci` first", from))?;
        }
        write_manifest(&pkg)
    }

    /// Runs wasm-opt from the npm `binaryen` package when it is installed (Debian's is too
    /// old and produces broken bundles, so it is never used). Its output is kept under the
    /// target directory by the hash of its input, and reused.
    fn shrink(&self, bundle: &Path) -> anyhow::Result<()> {
        let wasm_opt = self.root.join("node_modules").join(".bin").join("wasm-opt");
        if !wasm_opt.exists() {
            eprintln!("xtask: npm binaryen is not installed (npm ci); the bundle is not shrunk");
            return Ok(());
        }
        let cache = self.target_dir.join("wasm-opt");
        std::fs::create_dir_all(&cache)?;
        let kept = cache.join(format!("{}.wasm", file_hash(bundle)?));
        if kept.exists() {
            eprintln!("xtask: reusing the shrunk bundle {}", kept.display());
            std::fs::copy(&kept, bundle)?;
            return Ok(());
        }
        eprintln!(
            "xtask: shrinking the bundle with wasm-opt -Oz (a few minutes on two cores; kept for the next build)"
        );
        let started = std::time::Instant::now();
        let shrunk = bundle.with_extension("opt.wasm");
        let status = Command::new(&wasm_opt)
            .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext"])
            .args(["--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue"])
            .arg(bundle)
            .arg("-o")
            .arg(&shrunk)
            .status()
            .context("cannot run wasm-opt")?;
        if !status.success() {
            bail!("wasm-opt failed with {status}");
        }
        eprintln!("xtask: wasm-opt took {:.0} s", started.elapsed().as_secs_f64());
        std::fs::copy(&shrunk, &kept)?;
        std::fs::rename(&shrunk, bundle)?;
        Ok(())
    }

    fn build_binaries(&self, release: bool) -> anyhow::Result<()> {
        let mut args = vec!["build", "--package", "vigil-backend", "--package", "vigil-agent"];
        if release {
            args.push("--release");
        }
        self.cargo(&args)
    }

    fn dist(&self) -> anyhow::Result<()> {
        self.build_site(WasmProfile::Release)?;
        self.build_binaries(true)?;
        let dist = self.root.join("dist");
        let dist_pkg = dist.join("site").join("pkg");
        std::fs::create_dir_all(&dist_pkg)?;
        for binary in ["vigil", "vigil-agent"] {
            std::fs::copy(self.binary(binary, true), dist.join(binary))
                .with_context(|| format!("cannot copy {binary}"))?;
        }
        for entry in std::fs::read_dir(self.site_root().join("pkg"))? {
            let entry = entry?;
            std::fs::copy(entry.path(), dist_pkg.join(entry.file_name()))?;
        }
        eprintln!("xtask: dist/ holds vigil, vigil-agent and site/ (set ui.site_root to it)");
        Ok(())
    }
}

/// The SHA-256 of a file, in hex.
fn file_hash(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Files the backend serves compressed when the browser accepts it.
const COMPRESSED_EXTENSIONS: [&str; 3] = ["js", "wasm", "css"];

/// Writes `pkg/manifest.txt` (`<file> <SHA-256 of its content>` a line, which the backend
/// serves as ETags and in the bundle's URL) and a gzip copy beside each script, bundle and
/// stylesheet whose content changed.
fn write_manifest(pkg: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let manifest_path = pkg.join("manifest.txt");
    let previous = std::fs::read_to_string(&manifest_path).unwrap_or_default();
    let mut files = Vec::new();
    let mut folders = vec![pkg.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut manifest = String::new();
    for path in files {
        let name = path.strip_prefix(pkg)?.to_string_lossy().replace('\\', "/");
        if name == "manifest.txt" || name.starts_with('.') || name.ends_with(".gz") {
            continue;
        }
        let hash = file_hash(&path)?;
        let line = format!("{name} {hash}\n");
        let compressible =
            path.extension().is_some_and(|extension| COMPRESSED_EXTENSIONS.iter().any(|known| extension == *known));
        let gzip = path.with_file_name(format!("{}.gz", path.file_name().unwrap_or_default().to_string_lossy()));
        if compressible && (!previous.contains(&line) || !gzip.exists()) {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&std::fs::read(&path)?)?;
            std::fs::write(&gzip, encoder.finish()?)?;
        }
        manifest.push_str(&line);
    }
    std::fs::write(&manifest_path, manifest).context("cannot write the site's manifest")?;
    Ok(())
}
