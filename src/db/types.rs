//! sqlx encoding of the domain's state enums: each is stored as its text name and decoded
//! with `FromStr`, so an unknown name read back is a decode error, never a fallback.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::domain::job::{
    CleanupState, EventLevel, ForgetState, JobStatus, JobTrigger, MapperState, ObjectStatus,
};
use crate::domain::queue::MatchType;

macro_rules! text_column {
    ($($name:ty),+ $(,)?) => {$(
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl Decode<'_, Postgres> for $name {
            fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
                let raw = <&str as Decode<Postgres>>::decode(value)?;
                Ok(raw.parse::<$name>()?)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
    )+};
}

text_column!(
    JobStatus,
    JobTrigger,
    ObjectStatus,
    ForgetState,
    CleanupState,
    MapperState,
    EventLevel,
    MatchType,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn states_round_trip_and_an_unknown_name_is_an_error(db: sqlx::PgPool) {
        for &s in ForgetState::ALL {
            let back: ForgetState = sqlx::query_scalar("select $1::text")
                .bind(s)
                .fetch_one(&db)
                .await
                .unwrap();
            assert_eq!(back, s);
        }
        let many: Vec<JobStatus> = sqlx::query_scalar("select unnest($1::text[])")
            .bind(JobStatus::ALL)
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(many, JobStatus::ALL);
        let unknown = sqlx::query_scalar::<_, JobStatus>("select 'paused'::text")
            .fetch_one(&db)
            .await
            .unwrap_err();
        assert!(
            unknown.to_string().contains("unknown JobStatus \"paused\""),
            "{unknown}"
        );
    }
}
