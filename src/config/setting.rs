//! How one setting is read, and the `settings!` macro that declares every setting once.
//!
//! A setting's value is its environment variable's (the first of its names that is set
//! and not empty), else the file's, else its default; then its own check. A value that
//! does not parse or fails its check is an error naming the setting's first name.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{ConfigError, LogFormat, RetryMode, Secret};

/// A setting's type: how its value is read from the environment's text and from the file.
pub trait Value: Sized {
    /// The value's form in the TOML file.
    type File: DeserializeOwned;
    /// Parses the environment's text; the message says what is wrong, not which setting.
    fn from_env(raw: &str) -> Result<Self, String>;
    /// The file's value, checked as the environment's text is where the file holds text.
    fn from_file(file: Self::File) -> Result<Self, String>;
}

/// Types the file holds as they are and the environment spells with `FromStr`.
macro_rules! parsed_value {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            type File = $ty;
            fn from_env(raw: &str) -> Result<Self, String> {
                raw.parse().map_err(|_| format!("cannot parse {raw:?}"))
            }
            fn from_file(file: $ty) -> Result<Self, String> {
                Ok(file)
            }
        }
    )*};
}

parsed_value!(u32, u64, usize, bool, String, PathBuf);

/// Types the file holds as text, read as the environment's text is.
macro_rules! text_value {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            type File = String;
            fn from_env(raw: &str) -> Result<Self, String> {
                Self::from_text(raw)
            }
            fn from_file(file: String) -> Result<Self, String> {
                Self::from_text(&file)
            }
        }
    )*};
}

text_value!(SocketAddr, LogFormat, RetryMode, Secret, Vec<String>);

/// Reading a setting's value from text (the environment's, or the file's where it holds
/// text).
trait FromText: Sized {
    fn from_text(raw: &str) -> Result<Self, String>;
}

impl FromText for SocketAddr {
    fn from_text(raw: &str) -> Result<Self, String> {
        raw.parse()
            .map_err(|_| "must be host:port, e.g. 127.0.0.1:8080".to_owned())
    }
}

impl FromText for LogFormat {
    fn from_text(raw: &str) -> Result<Self, String> {
        match raw {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err("must be json or text".to_owned()),
        }
    }
}

impl FromText for RetryMode {
    fn from_text(raw: &str) -> Result<Self, String> {
        match raw {
            "standard" => Ok(RetryMode::Standard),
            "adaptive" => Ok(RetryMode::Adaptive),
            _ => Err("must be standard or adaptive".to_owned()),
        }
    }
}

impl FromText for Secret {
    fn from_text(raw: &str) -> Result<Self, String> {
        Ok(Secret::new(raw))
    }
}

/// A comma-separated list; blank entries are dropped.
impl FromText for Vec<String> {
    fn from_text(raw: &str) -> Result<Self, String> {
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// An optional setting: None unless the environment or the file sets it.
impl<T: Value> Value for Option<T> {
    type File = T::File;
    fn from_env(raw: &str) -> Result<Self, String> {
        T::from_env(raw).map(Some)
    }
    fn from_file(file: T::File) -> Result<Self, String> {
        T::from_file(file).map(Some)
    }
}

/// Where the environment is read: a variable's value, or None when it is not set.
pub type Env<'a> = &'a dyn Fn(&'static str) -> Option<String>;

/// One setting: the first of `names` the environment sets to a non-empty value, else
/// the file's value, else `default`; then `check`. Errors name `names.0`.
pub fn read<T: Value>(
    env: Env<'_>,
    names: (&'static str, &[&'static str]),
    file: Option<T::File>,
    default: impl FnOnce() -> T,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<T, ConfigError> {
    let (name, aliases) = names;
    let invalid = |message: String| ConfigError::Invalid { name, message };
    let raw = std::iter::once(name)
        .chain(aliases.iter().copied())
        .find_map(|n| env(n).filter(|v| !v.is_empty()));
    let value = match (raw, file) {
        (Some(raw), _) => T::from_env(&raw).map_err(invalid)?,
        (None, Some(file)) => T::from_file(file).map_err(invalid)?,
        (None, None) => default(),
    };
    check(&value).map_err(invalid)?;
    Ok(value)
}

/// No check beyond parsing.
pub fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

/// At least `min`.
pub fn at_least<T: PartialOrd + Display>(min: T) -> impl Fn(&T) -> Result<(), String> {
    move |v| {
        if *v < min {
            Err(format!("must be at least {min}"))
        } else {
            Ok(())
        }
    }
}

/// At most `max`.
pub fn at_most<T: PartialOrd + Display>(max: T) -> impl Fn(&T) -> Result<(), String> {
    move |v| {
        if *v > max {
            Err(format!("must be at most {max}"))
        } else {
            Ok(())
        }
    }
}

/// From `min` to `max`, both included.
pub fn between<T: PartialOrd + Display>(min: T, max: T) -> impl Fn(&T) -> Result<(), String> {
    move |v| {
        if *v < min || *v > max {
            Err(format!("must be between {min} and {max}"))
        } else {
            Ok(())
        }
    }
}

/// `check`, when the optional setting is set.
pub fn when_set<T>(
    check: impl Fn(&T) -> Result<(), String>,
) -> impl Fn(&Option<T>) -> Result<(), String> {
    move |v| v.as_ref().map_or(Ok(()), &check)
}

/// An absolute path.
pub fn absolute<P: AsRef<Path>>(path: &P) -> Result<(), String> {
    if path.as_ref().is_absolute() {
        Ok(())
    } else {
        Err("must be an absolute path".to_owned())
    }
}

/// A secret of at least `min` characters (bytes of its UTF-8).
pub fn min_chars(min: usize) -> impl Fn(&Secret) -> Result<(), String> {
    move |s| {
        if s.expose().len() < min {
            Err(format!("must be at least {min} characters"))
        } else {
            Ok(())
        }
    }
}

/// Declares the settings, one line each:
///
/// `file_key: Type = default, env "NAME" | "ALIAS", check check;`
///
/// `file_key` is the setting's key in the TOML file (an attribute on the line applies to
/// that key: `#[serde(skip)]` makes a setting the environment's only); `NAME` its
/// environment variable, which errors name, and `ALIAS` another the environment may set
/// instead; `check` a function of the value. Out of this come `ENV_VARS`, the file's form
/// (`FileConfig`, unknown keys rejected), and `Settings`, every value read and checked
/// (`Settings::read`) or every default (`Settings::defaults`).
macro_rules! settings {
    ($(
        $(#[$attr:meta])*
        $key:ident: $ty:ty = $default:expr, env $name:literal $(| $alias:literal)*, check $check:expr;
    )*) => {
        /// Every environment variable Lethe reads: `LETHE_CONFIG_FILE` and each setting's
        /// names (the README's configuration table lists each; a test checks it against
        /// this list, and `deploy/` against it).
        pub const ENV_VARS: &[&str] = &["LETHE_CONFIG_FILE", $($name, $($alias,)*)*];

        /// The file's form: every setting optional, unknown keys rejected.
        #[derive(Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $($(#[$attr])* $key: Option<<$ty as $crate::config::setting::Value>::File>,)*
        }

        /// Every setting's value, flat, by its file key.
        struct Settings {
            $($key: $ty,)*
        }

        impl Settings {
            /// Each setting's default.
            fn defaults() -> Self {
                Self { $($key: $default,)* }
            }

            /// Each setting read from the environment and the file, and checked.
            fn read(
                env: $crate::config::setting::Env<'_>,
                file: FileConfig,
            ) -> Result<Self, ConfigError> {
                Ok(Self {
                    $($key: $crate::config::setting::read(
                        env,
                        ($name, &[$($alias),*]),
                        file.$key,
                        || $default,
                        $check,
                    )?,)*
                })
            }
        }
    };
}

pub(crate) use settings;
