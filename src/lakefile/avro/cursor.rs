//! Avro's binary encoding read from a slice: zigzag varints of at most ten bytes, and
//! lengths checked against the bytes left before anything is taken. Nothing here panics
//! on any input, and nothing allocates: values are borrowed from the slice.

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The slice ends before the value does: the value needs the slice to be at least this
    /// long (more may be needed after).
    Short(usize),
    /// The bytes are not a valid encoding.
    Bad(&'static str),
}

/// A read position in a slice of Avro binary data.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// A cursor at `pos` (clamped to the end).
    pub(crate) fn at(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos: pos.min(data.len()),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// A `long`: a zigzag varint of at most ten bytes, whose tenth byte holds one bit.
    pub(crate) fn long(&mut self) -> Result<i64, Stop> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let at = self.pos + i;
            let Some(&byte) = self.data.get(at) else {
                return Err(Stop::Short(at + 1));
            };
            if i == 9 && byte > 1 {
                return Err(Stop::Bad("a varint is longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.pos = at + 1;
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(Stop::Bad("a varint is longer than ten bytes"))
    }

    /// An `int`: a `long` within 32 bits.
    pub(crate) fn int(&mut self) -> Result<i32, Stop> {
        let value = self.long()?;
        i32::try_from(value).map_err(|_| Stop::Bad("an int is beyond 32 bits"))
    }

    /// A length or a count: a `long` of at least zero.
    pub(crate) fn len(&mut self) -> Result<u64, Stop> {
        u64::try_from(self.long()?).map_err(|_| Stop::Bad("a length is negative"))
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], Stop> {
        let left = self.data.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let bytes = &self.data[self.pos..self.pos + n];
                self.pos += n;
                Ok(bytes)
            }
            _ => Err(Stop::Short(
                usize::try_from(n).map_or(usize::MAX, |n| self.pos.saturating_add(n)),
            )),
        }
    }

    /// `bytes` or `string`: a length, then that many bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Stop> {
        let len = self.len()?;
        self.take(len)
    }

    /// A `boolean`: one byte, 0 or 1.
    pub(crate) fn boolean(&mut self) -> Result<bool, Stop> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(Stop::Bad("a boolean is neither 0 nor 1")),
        }
    }

    /// A `float`: four bytes, little-endian.
    pub(crate) fn float(&mut self) -> Result<f32, Stop> {
        let bytes = self.take(4)?;
        let array: [u8; 4] = bytes.try_into().map_err(|_| Stop::Bad("a float"))?;
        Ok(f32::from_le_bytes(array))
    }

    /// A `double`: eight bytes, little-endian.
    pub(crate) fn double(&mut self) -> Result<f64, Stop> {
        let bytes = self.take(8)?;
        let array: [u8; 8] = bytes.try_into().map_err(|_| Stop::Bad("a double"))?;
        Ok(f64::from_le_bytes(array))
    }
}

/// Appends `value` as a `long` (zigzag varint).
pub(crate) fn put_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_decode_as_the_spec_gives_them() {
        for (bytes, value) in [
            (&[0x00][..], 0i64),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0x7f], -64),
            (&[0x80, 0x01], 64),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MIN,
            ),
            (
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MAX,
            ),
        ] {
            let mut c = Cursor::new(bytes);
            assert_eq!(c.long(), Ok(value), "{bytes:?}");
            assert!(c.is_empty());
        }
    }

    #[test]
    fn long_varints_and_short_input_are_refused_without_reading_past_the_end() {
        let eleven = [0x80u8; 11];
        assert!(matches!(Cursor::new(&eleven).long(), Err(Stop::Bad(_))));
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(matches!(Cursor::new(&overflow).long(), Err(Stop::Bad(_))));
        assert_eq!(Cursor::new(&[0x80, 0x80]).long(), Err(Stop::Short(3)));
        assert_eq!(Cursor::new(&[]).long(), Err(Stop::Short(1)));
        // A length far beyond the data asks for it and takes nothing.
        let mut huge = Vec::new();
        put_long(&mut huge, i64::MAX);
        let mut c = Cursor::new(&huge);
        assert!(matches!(c.bytes(), Err(Stop::Short(n)) if n > huge.len()));
        let mut negative = Vec::new();
        put_long(&mut negative, -5);
        assert!(matches!(Cursor::new(&negative).bytes(), Err(Stop::Bad(_))));
        assert!(matches!(Cursor::new(&[2]).boolean(), Err(Stop::Bad(_))));
        let mut big = Vec::new();
        put_long(&mut big, i64::from(i32::MAX) + 1);
        assert!(matches!(Cursor::new(&big).int(), Err(Stop::Bad(_))));
    }

    proptest! {
        #[test]
        fn every_long_reads_back_from_its_encoding(value in any::<i64>()) {
            let mut out = Vec::new();
            put_long(&mut out, value);
            prop_assert!(out.len() <= 10);
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.long(), Ok(value));
            prop_assert!(c.is_empty());
        }

        #[test]
        fn any_bytes_read_or_stop_without_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
            let mut c = Cursor::new(&bytes);
            while !c.is_empty() {
                if c.bytes().is_err() { break; }
            }
        }
    }
}
