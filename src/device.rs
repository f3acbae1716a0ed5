//! Choosing a device by name (`cpu`/`ndarray`, `flex`, `cuda`).

use burn::tensor::Device;

/// The CPU reference backend (burn's ndarray; deprecated by burn in favour of `flex`, kept as the
/// reference the tests use).
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
pub fn ndarray() -> Device {
    Device::ndarray()
}

/// Error for an unknown or disabled device name.
#[derive(Debug, thiserror::Error)]
#[error("unknown or disabled device `{name}`: available here are {available:?}")]
pub struct DeviceError {
    /// The name that was asked for.
    pub name: String,
    /// The names this build supports.
    pub available: Vec<&'static str>,
}

/// The device names this build supports.
pub fn available() -> Vec<&'static str> {
    let mut names = vec![];
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// Parses a device name: `cpu` (the fastest CPU backend built in), `ndarray`, `flex`, `cuda` or
/// `cuda:N`.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    let err = || DeviceError {
        name: name.to_string(),
        available: available(),
    };
    match name {
        #[cfg(feature = "flex")]
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(all(feature = "ndarray", not(feature = "flex")))]
        "cpu" => Ok(ndarray()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Ok(ndarray()),
        #[cfg(feature = "cuda")]
        n if n == "cuda" || n.starts_with("cuda:") => {
            let index = n
                .strip_prefix("cuda:")
                .map_or(Ok(0usize), str::parse)
                .map_err(|_| err())?;
            Ok(Device::cuda(index))
        }
        _ => Err(err()),
    }
}
