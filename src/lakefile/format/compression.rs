//! The compression of a text format's object (JSON Lines, CSV), a layer of its own: named
//! by the key's last extension (`.gz`, `.zst`/`.zstd`, `.bz2`; anything else is read as
//! it is), decoded as bytes are pushed (find streams ranged reads through it) or pulled
//! (forget reads a downloaded file), and kept on rewrite: a gzip object is rewritten as
//! gzip, a zstd object as zstd, a bzip2 object as bzip2.
//!
//! The other extensions Hadoop's codecs claim (`.deflate`, `.snappy`, `.lz4`, `.lzo`,
//! `.lzo_deflate`) are refused, not read as plain text: Athena decodes such an object by
//! its codec, so its rows are there for a query while its compressed bytes would show
//! Lethe no subject at all.
//!
//! Concatenated members (gzip `cat a.gz b.gz`, pbzip2's bzip2 streams, zstd frames) are
//! read to the end: a decoder that stopped at the first member would miss every record
//! after it.

use std::io::{self, BufRead, BufReader, Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

/// An object's compression, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    /// A Hadoop codec Lethe does not decode, by its extension: every read or write fails.
    Undecoded(&'static str),
}

/// The extensions of Hadoop's other codecs (DefaultCodec, SnappyCodec, Lz4Codec, LZO's),
/// by which Athena decodes a text object.
const UNDECODED: [&str; 5] = ["deflate", "snappy", "lz4", "lzo", "lzo_deflate"];

impl Compression {
    /// The compression a key's extension names.
    pub fn of_key(key: &str) -> Self {
        let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
        match ext.to_ascii_lowercase().as_str() {
            "gz" | "gzip" => Compression::Gzip,
            "zst" | "zstd" => Compression::Zstd,
            "bz2" => Compression::Bzip2,
            other => match UNDECODED.iter().find(|u| **u == other) {
                Some(codec) => Compression::Undecoded(codec),
                None => Compression::None,
            },
        }
    }

    /// Err for a codec Lethe does not decode, saying why the object is refused.
    fn decodable(self) -> io::Result<()> {
        match self {
            Compression::Undecoded(codec) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the key's extension names Hadoop's {codec} codec, by which Athena decodes the object and Lethe does not (gzip, zstd and bzip2 only); refused, not read as plain text"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The decoded bytes of a compressed reader.
    pub fn reader<'a>(self, input: impl Read + 'a) -> io::Result<Box<dyn BufRead + 'a>> {
        self.decodable()?;
        Ok(match self {
            Compression::None | Compression::Undecoded(_) => Box::new(BufReader::new(input)),
            Compression::Gzip => Box::new(BufReader::new(MultiGzDecoder::new(input))),
            Compression::Zstd => Box::new(BufReader::new(zstd::stream::read::Decoder::new(input)?)),
            Compression::Bzip2 => Box::new(BufReader::new(bzip2::read::MultiBzDecoder::new(input))),
        })
    }

    /// A writer that compresses into `out`; [`Encoder::finish`] writes the trailer.
    pub fn encoder<W: Write>(self, out: W) -> io::Result<Encoder<W>> {
        self.decodable()?;
        Ok(match self {
            Compression::None | Compression::Undecoded(_) => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(GzEncoder::new(out, flate2::Compression::default())),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                out,
                bzip2::Compression::default(),
            )),
        })
    }

    /// A writer that decodes what is written to it into `inner` (find pushes each ranged
    /// read through it); [`Decoder::finish`] fails on a truncated stream.
    pub fn decoder<W: Write>(self, inner: W) -> io::Result<Decoder<W>> {
        self.decodable()?;
        Ok(match self {
            Compression::None | Compression::Undecoded(_) => Decoder::Plain(inner),
            Compression::Gzip => Decoder::Gzip(flate2::write::MultiGzDecoder::new(inner)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::write::Decoder::new(inner)?),
            Compression::Bzip2 => Decoder::Bzip2(MultiBz::Between(inner)),
        })
    }
}

/// A compressing writer of one of the kinds.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Bzip2(bzip2::write::BzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// Writes the stream's trailer and returns the inner writer (not flushed).
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
        }
    }
}

/// A decoding writer of one of the kinds.
pub enum Decoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::MultiGzDecoder<W>),
    Zstd(zstd::stream::write::Decoder<'static, W>),
    Bzip2(MultiBz<W>),
}

impl<W: Write> Decoder<W> {
    /// The inner writer once the stream is complete; a truncated stream is an error.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Decoder::Plain(w) => Ok(w),
            Decoder::Gzip(d) => d.finish(),
            Decoder::Zstd(d) => d.finish(),
            Decoder::Bzip2(d) => d.finish(),
        }
    }
}

impl<W: Write> Write for Decoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(w) => w.write(buf),
            Decoder::Gzip(d) => d.write(buf),
            Decoder::Zstd(d) => d.write(buf),
            Decoder::Bzip2(d) => d.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Decoder::Plain(w) => w.flush(),
            Decoder::Gzip(d) => d.flush(),
            Decoder::Zstd(d) => d.flush(),
            Decoder::Bzip2(d) => d.flush(),
        }
    }
}

/// A bzip2 decoding writer that reads concatenated streams (pbzip2, lbzip2): the crate's
/// writer stops at the end of the first.
pub enum MultiBz<W: Write> {
    /// Inside a stream.
    In(Box<bzip2::write::BzDecoder<W>>),
    /// Before the first stream or after the end of one.
    Between(W),
    /// Only while switching.
    Gone,
}

impl<W: Write> MultiBz<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            MultiBz::In(mut d) => d.finish(),
            MultiBz::Between(w) => Ok(w),
            MultiBz::Gone => Err(io::Error::other("bzip2 decoder lost its writer")),
        }
    }
}

impl<W: Write> Write for MultiBz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(self, MultiBz::Gone) {
                MultiBz::Between(w) => {
                    *self = MultiBz::In(Box::new(bzip2::write::BzDecoder::new(w)))
                }
                MultiBz::In(mut d) => {
                    let n = d.write(buf)?;
                    if n > 0 {
                        *self = MultiBz::In(d);
                        return Ok(n);
                    }
                    // The stream ended before `buf`: the next bytes start another.
                    *self = MultiBz::Between(d.finish()?);
                }
                MultiBz::Gone => return Err(io::Error::other("bzip2 decoder lost its writer")),
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            MultiBz::In(d) => d.flush(),
            MultiBz::Between(w) => w.flush(),
            MultiBz::Gone => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"{\"id\": 1}\n{\"id\": 2}\nlast line without newline";

    fn compress(c: Compression, bytes: &[u8]) -> Vec<u8> {
        let mut e = c.encoder(Vec::new()).unwrap();
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn keys_name_their_compression() {
        assert_eq!(Compression::of_key("t/a.json.gz"), Compression::Gzip);
        assert_eq!(Compression::of_key("t/a.csv.ZST"), Compression::Zstd);
        assert_eq!(Compression::of_key("t/a.csv.zstd"), Compression::Zstd);
        assert_eq!(Compression::of_key("t/a.csv.bz2"), Compression::Bzip2);
        assert_eq!(Compression::of_key("t/a.csv"), Compression::None);
        assert_eq!(Compression::of_key("t.gz/a"), Compression::None);
        assert_eq!(
            Compression::of_key("t/a.csv.deflate"),
            Compression::Undecoded("deflate")
        );
        assert_eq!(
            Compression::of_key("t/a.SNAPPY"),
            Compression::Undecoded("snappy")
        );
        assert_eq!(
            Compression::of_key("t/a.json.lz4"),
            Compression::Undecoded("lz4")
        );
        assert_eq!(
            Compression::of_key("t/a.lzo_deflate"),
            Compression::Undecoded("lzo_deflate")
        );
        assert_eq!(Compression::of_key("t/deflate"), Compression::None);
    }

    /// An object of a Hadoop codec Lethe does not decode is refused whichever way it is
    /// read or written, never taken as plain text.
    #[test]
    fn a_codec_lethe_does_not_decode_is_refused_pulled_pushed_and_written() {
        let c = Compression::of_key("t/a.csv.deflate");
        let refused = |e: io::Error| {
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
            assert!(e.to_string().contains("deflate codec"), "{e}");
        };
        refused(c.reader(&b"7,a\n"[..]).err().unwrap());
        refused(c.decoder(Vec::new()).err().unwrap());
        refused(c.encoder(Vec::new()).err().unwrap());
    }

    /// Two members of each kind concatenated, decoded pulled and pushed in small pieces,
    /// give both members' bytes; a truncated stream is an error either way.
    #[test]
    fn concatenated_members_decode_in_full_pulled_or_pushed_and_truncation_fails() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
        ] {
            let mut bytes = compress(c, TEXT);
            bytes.extend(compress(c, b"\nsecond member\n"));
            let mut expected = TEXT.to_vec();
            expected.extend_from_slice(b"\nsecond member\n");
            let mut pulled = Vec::new();
            c.reader(&bytes[..])
                .unwrap()
                .read_to_end(&mut pulled)
                .unwrap();
            assert_eq!(pulled, expected, "{c:?} pulled");
            for piece in [1, 7, 4096] {
                let mut d = c.decoder(Vec::new()).unwrap();
                for chunk in bytes.chunks(piece) {
                    d.write_all(chunk).unwrap();
                }
                assert_eq!(d.finish().unwrap(), expected, "{c:?} pushed by {piece}");
            }
            if c != Compression::None {
                let cut = &bytes[..bytes.len() / 2 - 3];
                let mut d = c.decoder(Vec::new()).unwrap();
                let pushed = d.write_all(cut).and_then(|()| d.finish().map(drop));
                assert!(pushed.is_err(), "{c:?}: a truncated stream decoded");
                let mut sink = Vec::new();
                let pulled = c.reader(cut).unwrap().read_to_end(&mut sink);
                assert!(pulled.is_err(), "{c:?}: a truncated stream read");
            }
        }
    }
}
