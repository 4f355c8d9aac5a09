//! Column types that decode themselves from either backend through sqlx's `Any` driver, so row
//! structs derive `sqlx::FromRow` instead of reading each column by hand.
//!
//! Through `Any`, both backends give integers as some integer kind (PostgreSQL's `COUNT` and
//! `CASE` give `BIGINT` or `INTEGER`; `i64` accepts either) and text as text. Flags are stored
//! as `BIGINT` 0/1 on both (migration 0001), which `Any` will not read as `bool`: [`Flag`] does.

use sqlx::any::AnyTypeInfo;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, Type};

use super::from_ms;
use crate::domain::{ForgeKind, RepoRef};

/// A 0/1 flag column. A `bool` field reads it with `#[sqlx(try_from = "Flag")]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Flag(<i64 as Decode<Any>>::decode(value)? != 0))
    }
}

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

/// A time stored as milliseconds since the Unix epoch. A `DateTime<Utc>` field reads it with
/// `#[sqlx(try_from = "Millis")]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis(pub i64);

impl Type<Any> for Millis {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Millis {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Millis(<i64 as Decode<Any>>::decode(value)?))
    }
}

impl From<JsonText<Vec<String>>> for Vec<String> {
    fn from(json: JsonText<Vec<String>>) -> Self {
        json.0
    }
}

impl From<Millis> for chrono::DateTime<chrono::Utc> {
    fn from(ms: Millis) -> Self {
        from_ms(ms.0)
    }
}

/// An optional forge number (issue, pull request, comment id), stored as a signed integer bit
/// for bit. An `Option<u64>` field reads it with `#[sqlx(try_from = "ForgeNumber")]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForgeNumber(pub Option<u64>);

impl Type<Any> for ForgeNumber {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for ForgeNumber {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        if sqlx::ValueRef::is_null(&value) {
            return Ok(ForgeNumber(None));
        }
        Ok(ForgeNumber(Some(
            <i64 as Decode<Any>>::decode(value)? as u64
        )))
    }
}

impl From<ForgeNumber> for Option<u64> {
    fn from(n: ForgeNumber) -> Self {
        n.0
    }
}

/// A JSON document stored as text. A field of type `T` reads it with
/// `#[sqlx(try_from = "JsonText<T>")]` and a `From<JsonText<T>> for T` beside `T`'s row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonText<T>(pub T);

impl<T> Type<Any> for JsonText<T> {
    fn type_info() -> AnyTypeInfo {
        <str as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <str as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: serde::de::DeserializeOwned> Decode<'r, Any> for JsonText<T> {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Any>>::decode(value)?;
        Ok(JsonText(serde_json::from_str(text)?))
    }
}

/// Makes a type with `FromStr` a text column: it decodes itself, and a value it does not know
/// fails the row's decoding (a corrupt row) instead of being read as something else.
macro_rules! text_column {
    ($ty:ty) => {
        impl ::sqlx::Type<::sqlx::Any> for $ty {
            fn type_info() -> ::sqlx::any::AnyTypeInfo {
                <str as ::sqlx::Type<::sqlx::Any>>::type_info()
            }

            fn compatible(ty: &::sqlx::any::AnyTypeInfo) -> bool {
                <str as ::sqlx::Type<::sqlx::Any>>::compatible(ty)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::Any> for $ty {
            fn decode(
                value: <::sqlx::Any as ::sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, ::sqlx::error::BoxDynError> {
                let text = <&str as ::sqlx::Decode<::sqlx::Any>>::decode(value)?;
                Ok(text.parse::<$ty>()?)
            }
        }
    };
}
pub(crate) use text_column;

text_column!(ForgeKind);

/// A repository read from a row's `forge`, `owner` and `name` columns (`#[sqlx(flatten)]`).
impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for RepoRef {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(RepoRef::new(
            row.try_get::<ForgeKind, _>("forge")?,
            row.try_get::<String, _>("owner")?,
            row.try_get::<String, _>("name")?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::{Flag, ForgeNumber, Millis};
    use crate::domain::RepoRef;
    use crate::store::runs::RunState;

    async fn row(sql: &str) -> sqlx::any::AnyRow {
        sqlx::any::install_default_drivers();
        let store = crate::store::Store::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        sqlx::query(sql)
            .fetch_one(store.pool())
            .await
            .expect("the query runs")
    }

    #[tokio::test]
    async fn a_flag_reads_an_integer_as_a_bool() {
        let row = row("SELECT 0 AS off, 1 AS on_").await;
        assert_eq!(row.try_get::<Flag, _>("off").ok(), Some(Flag(false)));
        assert_eq!(row.try_get::<Flag, _>("on_").ok(), Some(Flag(true)));
        assert!(row.try_get::<bool, _>("on_").is_err(), "Any alone cannot");
    }

    #[tokio::test]
    async fn millis_read_as_a_time() {
        let row = row("SELECT 1700000000123 AS at").await;
        let at: chrono::DateTime<chrono::Utc> =
            row.try_get::<Millis, _>("at").expect("an integer").into();
        assert_eq!(at.timestamp_millis(), 1_700_000_000_123);
    }

    #[tokio::test]
    async fn a_text_column_reads_what_it_knows_and_refuses_the_rest() {
        let row = row("SELECT 'running' AS known, 'sleeping' AS unknown").await;
        assert_eq!(
            row.try_get::<RunState, _>("known").ok(),
            Some(RunState::Running)
        );
        assert!(row.try_get::<RunState, _>("unknown").is_err());
    }

    #[tokio::test]
    async fn a_forge_number_reads_null_as_none() {
        let row = row("SELECT NULL AS none_, 42 AS some_").await;
        assert_eq!(
            row.try_get::<ForgeNumber, _>("none_").ok(),
            Some(ForgeNumber(None))
        );
        assert_eq!(
            row.try_get::<ForgeNumber, _>("some_").ok(),
            Some(ForgeNumber(Some(42)))
        );
    }

    #[tokio::test]
    async fn a_repository_reads_from_its_three_columns() {
        let row = row("SELECT 'gitea' AS forge, 'octo' AS owner, 'hello' AS name").await;
        let repo = <RepoRef as sqlx::FromRow<_>>::from_row(&row).expect("a repository");
        assert_eq!(repo.to_string(), "gitea:octo/hello");
    }
}
