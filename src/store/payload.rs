//! How a delivery's payload is kept in the database: zstd-compressed, with its original size,
//! so the inbox stays small; rows stored before compression (`identity`) are read as they are.

use std::cell::RefCell;

/// A payload as stored: the bytes, their encoding and the payload's own size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub encoding: Encoding,
    pub bytes: Vec<u8>,
    /// The payload's size before encoding.
    pub size: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Stored as received (every row from before compression).
    Identity,
    Zstd,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Zstd => "zstd",
        }
    }
}

/// A stored payload that cannot be read back; the delivery is failed with this as its reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorruptPayload {
    #[error("the stored payload is corrupt: unknown encoding {0:?}")]
    UnknownEncoding(String),
    #[error("the stored payload is corrupt: its size is missing or invalid")]
    Size,
    #[error("the stored payload is corrupt: zstd: {0}")]
    Zstd(String),
    #[error("the stored payload is corrupt: {actual} bytes decompressed, {expected} expected")]
    Length { expected: i64, actual: usize },
}

/// zstd's fastest standard level: JSON shrinks about as much as at the default level 3, for
/// less CPU on the intake path.
const LEVEL: i32 = 1;

thread_local! {
    // A compression context is a few hundred KiB; one per thread is reused across deliveries.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses a payload for storing. Should zstd fail (it does not on valid input; an
/// allocation failure would abort first) the payload is stored as it is.
pub fn encode(payload: &[u8]) -> Encoded {
    let size = i64::try_from(payload.len()).unwrap_or(i64::MAX);
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        slot.as_mut().and_then(|c| c.compress(payload).ok())
    });
    match compressed {
        Some(bytes) => Encoded {
            encoding: Encoding::Zstd,
            bytes,
            size,
        },
        None => Encoded {
            encoding: Encoding::Identity,
            bytes: payload.to_vec(),
            size,
        },
    }
}

/// A payload's columns as read back: `encoding`, `body` and `body_size` (NULL on rows from
/// before compression).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredPayload {
    pub encoding: String,
    pub body: Vec<u8>,
    pub body_size: Option<i64>,
}

impl StoredPayload {
    /// The payload as received.
    pub fn decode(self) -> Result<Vec<u8>, CorruptPayload> {
        decode(&self.encoding, self.body, self.body_size)
    }
}

/// The payload of a stored row: `encoding` and `size` are its columns (`size` is NULL on rows
/// from before compression).
pub fn decode(
    encoding: &str,
    bytes: Vec<u8>,
    size: Option<i64>,
) -> Result<Vec<u8>, CorruptPayload> {
    match encoding {
        "identity" => Ok(bytes),
        "zstd" => {
            let expected = size.ok_or(CorruptPayload::Size)?;
            let capacity = usize::try_from(expected).map_err(|_| CorruptPayload::Size)?;
            let out = DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| CorruptPayload::Zstd(e.to_string()))?,
                    );
                }
                match slot.as_mut() {
                    // The capacity bounds the output: a row cannot decompress past its size.
                    Some(d) => d
                        .decompress(&bytes, capacity)
                        .map_err(|e| CorruptPayload::Zstd(e.to_string())),
                    None => Err(CorruptPayload::Zstd("no decompression context".into())),
                }
            })?;
            if out.len() != capacity {
                return Err(CorruptPayload::Length {
                    expected,
                    actual: out.len(),
                });
            }
            Ok(out)
        }
        other => Err(CorruptPayload::UnknownEncoding(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Vec<u8> {
        let pretty = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/github/issues/labeled.payload.json"
        ))
        .unwrap();
        // Compact, as GitHub sends it.
        let v: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn round_trip_is_smaller_and_exact() {
        let raw = payload();
        let stored = encode(&raw);
        assert_eq!(stored.encoding, Encoding::Zstd);
        assert_eq!(stored.size, raw.len() as i64);
        assert!(
            stored.bytes.len() * 3 < raw.len(),
            "{} of {}",
            stored.bytes.len(),
            raw.len()
        );
        assert_eq!(
            decode("zstd", stored.bytes, Some(stored.size)).unwrap(),
            raw
        );
    }

    #[test]
    fn identity_rows_read_as_stored() {
        assert_eq!(decode("identity", b"{}".to_vec(), None).unwrap(), b"{}");
    }

    #[test]
    fn garbage_is_reported_not_a_panic() {
        let err = decode("zstd", b"not zstd at all".to_vec(), Some(15)).unwrap_err();
        assert!(matches!(err, CorruptPayload::Zstd(_)), "{err}");
        assert!(err.to_string().starts_with("the stored payload is corrupt"));
    }

    #[test]
    fn truncated_frame_is_reported() {
        let raw = payload();
        let mut stored = encode(&raw);
        stored.bytes.truncate(stored.bytes.len() / 2);
        assert!(decode("zstd", stored.bytes, Some(stored.size)).is_err());
    }

    #[test]
    fn a_payload_larger_than_its_recorded_size_is_refused() {
        let raw = payload();
        let stored = encode(&raw);
        // A size too small: the output would overflow it.
        assert!(decode("zstd", stored.bytes.clone(), Some(100)).is_err());
        // A size too large: fewer bytes than expected.
        let err = decode("zstd", stored.bytes, Some(stored.size + 1)).unwrap_err();
        assert!(matches!(err, CorruptPayload::Length { .. }), "{err}");
    }

    #[test]
    fn missing_size_or_unknown_encoding_is_corrupt() {
        let stored = encode(&payload());
        assert_eq!(
            decode("zstd", stored.bytes.clone(), None),
            Err(CorruptPayload::Size)
        );
        assert_eq!(
            decode("zstd", stored.bytes.clone(), Some(-1)),
            Err(CorruptPayload::Size)
        );
        assert!(matches!(
            decode("brotli", stored.bytes, Some(stored.size)),
            Err(CorruptPayload::UnknownEncoding(_))
        ));
    }
}
