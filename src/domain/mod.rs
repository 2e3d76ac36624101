//! Types and rules of Lethe's domain. No axum, no sqlx, no AWS here: everything in this
//! module is pure and unit-tested on in-memory values.

/// An enum stored as text: `as_str`, `ALL`, `FromStr` (unknown names are errors) and
/// `Display`, with serde using the same snake_case names.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownState;
            fn from_str(raw: &str) -> Result<Self, $crate::domain::UnknownState> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::UnknownState { kind: stringify!($name), value: raw.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A state name no variant has (a database row written by a newer version, or corrupt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

pub mod access_policy;
pub mod classification;
pub mod data_mapper;
pub mod exact;
pub mod field_ids;
pub mod grants;
pub mod hidden;
pub mod hive_type;
pub mod iam_policy;
pub mod job;
pub mod json_serde;
pub mod key;
pub mod match_id;
pub mod partition;
pub mod prefix;
pub mod projection;
pub mod queue;
pub mod queue_exact;
pub mod retention;
pub mod settings;
pub mod validation;
