//! Finding and loading ONNX Runtime (`libonnxruntime.so`) at run time.
//!
//! spectradb links ONNX Runtime dynamically so that it builds without
//! downloads. The library is looked for, in order: `SPECTRADB_ONNXRUNTIME`,
//! `ORT_DYLIB_PATH`, the library the embedding program named
//! ([`use_library`]: the Python package passes its interpreter's wheel),
//! the `capi/` folder of the PyPI `onnxruntime` package of the `python3`
//! on PATH, then the usual system library folders. A
//! missing or too old library is an error that says how to install one;
//! nothing panics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The ONNX Runtime release this build is made for (`ort`'s `api-31`).
pub const ORT_VERSION: &str = "1.31.1";

/// How to get a matching library, for error messages and the README.
pub fn install_hint() -> String {
    format!(
        "install it with `python3 -m pip install onnxruntime=={ORT_VERSION}` \
         (spectradb finds the wheel's capi/libonnxruntime.so by itself), or set \
         SPECTRADB_ONNXRUNTIME=/path/to/libonnxruntime.so (version 1.31 or newer)"
    )
}

/// The wheel's `capi/` folder. Asks Python where the package is without
/// importing it: importing onnxruntime loads numpy and the runtime itself,
/// which made up most of the time a process's first model query spent
/// finding the library.
fn python_capi_dir() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util, os; \
             print(os.path.dirname(importlib.util.find_spec('onnxruntime').origin))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(Path::new(dir.trim()).join("capi"))
}

/// The version numbers after `libonnxruntime.so.` (`[1, 31, 1]`; empty for
/// the bare `.so`), or `None` for another file. Compared as numbers, so
/// that 1.31 is newer than 1.9.
fn library_version(name: &str) -> Option<Vec<u64>> {
    let rest = name.strip_prefix("libonnxruntime.so")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.strip_prefix('.')?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

/// The newest `libonnxruntime.so*` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    newest_library(
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path())),
    )
}

/// The path among `paths` whose file name carries the highest library version.
fn newest_library(paths: impl Iterator<Item = PathBuf>) -> Option<PathBuf> {
    paths
        .filter_map(|p| {
            let version = library_version(p.file_name()?.to_str()?)?;
            Some((version, p))
        })
        .max()
        .map(|(_, p)| p)
}

/// The library named by the program that embeds spectradb.
static CHOSEN: OnceLock<PathBuf> = OnceLock::new();

/// Uses the library at `path` unless an environment variable names one.
/// Takes effect only before the first model runs (the runtime loads once
/// per process); returns whether it was taken.
pub fn use_library(path: impl Into<PathBuf>) -> bool {
    ENVIRONMENT.get().is_none() && CHOSEN.set(path.into()).is_ok()
}

/// Where the library is, or why none was found.
pub fn find_library() -> Result<PathBuf> {
    for var in ["SPECTRADB_ONNXRUNTIME", "ORT_DYLIB_PATH"] {
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Ok(p);
            }
            return Err(Error::Runtime(format!(
                "{var} is set to {}, which is not a file; {}",
                p.display(),
                install_hint()
            )));
        }
    }
    if let Some(p) = CHOSEN.get() {
        if p.is_file() {
            return Ok(p.clone());
        }
        return Err(Error::Runtime(format!(
            "the ONNX Runtime library {} is not a file; {}",
            p.display(),
            install_hint()
        )));
    }
    let mut dirs: Vec<PathBuf> = python_capi_dir().into_iter().collect();
    for d in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs.iter().find_map(|d| library_in(d)).ok_or_else(|| {
        Error::Runtime(format!(
            "ONNX Runtime (libonnxruntime.so) was not found; {}",
            install_hint()
        ))
    })
}

static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, loaded on first use.
pub fn environment() -> Result<&'static Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = find_library().map_err(|e| e.to_string())?;
            let builder = ort::init_from(&path).map_err(|e| {
                format!(
                    "cannot load ONNX Runtime from {}: {e}; {}",
                    path.display(),
                    install_hint()
                )
            })?;
            builder
                .with_name("spectradb")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime ({}): {e}", path.display()))
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_library_is_chosen_by_version_number() {
        let names = [
            "libonnxruntime.so",
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime.so.1.31.0",
            "libonnxruntime.so.1.4",
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.1.40.bak",
        ];
        let paths = names.iter().map(|n| Path::new("/lib").join(n));
        assert_eq!(
            newest_library(paths),
            Some(PathBuf::from("/lib/libonnxruntime.so.1.31.1"))
        );
        assert_eq!(library_version("libonnxruntime.so.1.9"), Some(vec![1, 9]));
        assert_eq!(library_version("libonnxruntime.so"), Some(vec![]));
        assert_eq!(library_version("libonnxruntime.sox"), None);
        // Only the bare name: it is found too.
        let bare = std::iter::once(PathBuf::from("/lib/libonnxruntime.so"));
        assert_eq!(
            newest_library(bare),
            Some(PathBuf::from("/lib/libonnxruntime.so"))
        );
    }
}
