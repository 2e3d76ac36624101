//! Block codecs: how a block's records are compressed (`avro.codec`). Decompression is
//! bounded: it stops once the output passes the cap, whatever the block claims, and a
//! codec whose format states its size (snappy) is refused before anything is allocated.
//! Snappy's CRC-32 of the uncompressed records is checked; zstd's window and xz's
//! dictionary (the memory a stream may ask for) are capped.

use std::borrow::Cow;
use std::io::{Read, Write};

use super::AvroError;

/// A block codec the specification names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The records as they are.
    Null,
    /// Raw deflate (RFC 1951, no zlib header).
    Deflate,
    /// Raw snappy, then the big-endian CRC-32 of the uncompressed data.
    Snappy,
    /// One or more zstd frames.
    Zstandard,
    /// One bzip2 stream.
    Bzip2,
    /// One or more xz streams.
    Xz,
}

/// The smallest xz dictionary limit, whatever the cap: `xz -9` needs 64 MiB.
const XZ_MIN_MEMORY: usize = 66 << 20;

impl Codec {
    /// The codec of an `avro.codec` value; None for a name the specification lacks.
    pub fn of_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"null" => Codec::Null,
            b"deflate" => Codec::Deflate,
            b"snappy" => Codec::Snappy,
            b"zstandard" => Codec::Zstandard,
            b"bzip2" => Codec::Bzip2,
            b"xz" => Codec::Xz,
            _ => return None,
        })
    }

    /// The codec's name in `avro.codec`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Null => "null",
            Codec::Deflate => "deflate",
            Codec::Snappy => "snappy",
            Codec::Zstandard => "zstandard",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
        }
    }

    /// The records of block `block` (its data as the file has it), at most `max` bytes.
    pub(crate) fn decompress(
        self,
        data: &[u8],
        max: usize,
        block: u64,
    ) -> Result<Cow<'_, [u8]>, AvroError> {
        let corrupt = |reason| AvroError::CorruptBlock { block, reason };
        let out = match self {
            Codec::Null => return Ok(Cow::Borrowed(data)),
            Codec::Snappy => return snappy(data, max, block).map(Cow::Owned),
            Codec::Deflate => capped(flate2::read::DeflateDecoder::new(data), max),
            Codec::Zstandard => zstd_decoder(data, max).and_then(|d| capped(d, max)),
            Codec::Bzip2 => capped(bzip2::read::BzDecoder::new(data), max),
            Codec::Xz => {
                let limit = max.max(XZ_MIN_MEMORY) / 1024;
                let limit = u32::try_from(limit).unwrap_or(u32::MAX - 1);
                capped(lzma_rust2::XzReader::new_mem_limit(data, true, limit), max)
            }
        };
        match out {
            Ok(Some(records)) => Ok(Cow::Owned(records)),
            Ok(None) => Err(AvroError::InflatesTooLarge { block, max }),
            Err(reason) => Err(corrupt(reason)),
        }
    }

    /// Compresses records as this codec writes a block's data.
    pub(crate) fn compress(self, records: &[u8]) -> std::io::Result<Vec<u8>> {
        Ok(match self {
            Codec::Null => records.to_vec(),
            Codec::Deflate => {
                let mut out =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                out.write_all(records)?;
                out.finish()?
            }
            Codec::Snappy => {
                let mut out = snap::raw::Encoder::new()
                    .compress_vec(records)
                    .map_err(std::io::Error::other)?;
                out.extend_from_slice(&crc32fast::hash(records).to_be_bytes());
                out
            }
            Codec::Zstandard => zstd::bulk::compress(records, 3)?,
            Codec::Bzip2 => {
                let mut out =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                out.write_all(records)?;
                out.finish()?
            }
            Codec::Xz => {
                let options = lzma_rust2::XzOptions::with_preset(6);
                let mut out = lzma_rust2::XzWriter::new(Vec::new(), options)?;
                out.write_all(records)?;
                out.finish()?
            }
        })
    }
}

/// A zstd decoder whose window (the memory it takes) is at most the cap, and never less
/// than 8 MiB (what `zstd -19` asks for) nor more than 128 MiB (zstd's own default limit).
fn zstd_decoder(data: &[u8], max: usize) -> Result<impl Read + '_, &'static str> {
    let bits = usize::BITS - max.saturating_sub(1).leading_zeros();
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
        .map_err(|_| "its zstandard stream is not valid")?;
    decoder
        .window_log_max(bits.clamp(23, 27))
        .map_err(|_| "its zstandard stream is not valid")?;
    Ok(decoder)
}

/// Everything `reader` gives, or None once it gives more than `max` bytes.
fn capped(reader: impl Read, max: usize) -> Result<Option<Vec<u8>>, &'static str> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| "its data does not decompress with the file's codec")?;
    Ok((out.len() <= max).then_some(out))
}

/// A snappy block: the raw snappy data, then the CRC-32 of what it decompresses to.
fn snappy(data: &[u8], max: usize, block: u64) -> Result<Vec<u8>, AvroError> {
    let corrupt = |reason| AvroError::CorruptBlock { block, reason };
    let split = data
        .len()
        .checked_sub(4)
        .ok_or(corrupt("its snappy data has no CRC"))?;
    let (compressed, crc) = data.split_at(split);
    let len = snap::raw::decompress_len(compressed)
        .map_err(|_| corrupt("its snappy data is not valid"))?;
    if len > max {
        return Err(AvroError::InflatesTooLarge { block, max });
    }
    let records = snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|_| corrupt("its snappy data is not valid"))?;
    if crc32fast::hash(&records).to_be_bytes() != crc {
        return Err(AvroError::Crc { block });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 6] = [
        Codec::Null,
        Codec::Deflate,
        Codec::Snappy,
        Codec::Zstandard,
        Codec::Bzip2,
        Codec::Xz,
    ];

    #[test]
    fn every_codec_reads_back_what_it_writes() {
        let records: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for codec in ALL {
            let data = codec.compress(&records).unwrap();
            let back = codec.decompress(&data, records.len(), 1).unwrap();
            assert_eq!(back.as_ref(), records.as_slice(), "{codec:?}");
            let short = codec.decompress(&data, records.len() - 1, 1);
            if codec != Codec::Null {
                assert!(
                    matches!(short, Err(AvroError::InflatesTooLarge { block: 1, .. })),
                    "{codec:?}: {short:?}"
                );
            }
        }
    }

    #[test]
    fn a_block_inflating_past_the_cap_stops_there() {
        let bomb = vec![0u8; 1 << 20];
        for codec in [
            Codec::Deflate,
            Codec::Zstandard,
            Codec::Bzip2,
            Codec::Xz,
            Codec::Snappy,
        ] {
            let data = codec.compress(&bomb).unwrap();
            let r = codec.decompress(&data, 64 << 10, 3);
            assert!(
                matches!(r, Err(AvroError::InflatesTooLarge { block: 3, max }) if max == 64 << 10),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_snappy_block_whose_crc_differs_is_refused() {
        let mut data = Codec::Snappy.compress(b"some records").unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(matches!(
            Codec::Snappy.decompress(&data, 1024, 2),
            Err(AvroError::Crc { block: 2 })
        ));
        assert!(matches!(
            Codec::Snappy.decompress(&[1, 2], 1024, 2),
            Err(AvroError::CorruptBlock { block: 2, .. })
        ));
    }

    #[test]
    fn damaged_compressed_data_is_an_error_or_other_bytes_never_a_panic() {
        let records: Vec<u8> = (0..2000u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
        for codec in ALL {
            let data = codec.compress(&records).unwrap();
            for i in (0..data.len()).step_by(data.len() / 40 + 1) {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut damaged = data.clone();
                    damaged[i] ^= flip;
                    if let Ok(out) = codec.decompress(&damaged, 1 << 16, 1) {
                        assert!(out.len() <= 1 << 16);
                    }
                }
                let _ = codec.decompress(&data[..i], 1 << 16, 1);
            }
        }
        assert_eq!(Codec::of_name(b"lz4"), None);
        for codec in ALL {
            assert_eq!(Codec::of_name(codec.name().as_bytes()), Some(codec));
        }
    }
}
