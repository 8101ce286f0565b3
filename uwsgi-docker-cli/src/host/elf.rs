//! Telling a static executable from a dynamic one. Shared with build.rs (`#[path]`), which
//! checks the launcher it embeds; so this file uses nothing but `core`.

/// The ELF64 header's length: the start of every file [`headers_end`] is asked about.
pub const ELF_HEADER_LEN: usize = 0x40;

/// The ELF header and program header table of an ELF64 LE file: where the table starts,
/// its entries' size and their number.
struct ProgramHeaders {
    offset: usize,
    entry_size: usize,
    count: usize,
}

impl ProgramHeaders {
    fn read(bytes: &[u8]) -> Option<ProgramHeaders> {
        if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
            return None;
        }
        let u16_at = |at: usize| -> Option<usize> {
            let b = bytes.get(at..at + 2)?;
            Some(usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
        };
        let offset =
            usize::try_from(u64::from_le_bytes(bytes.get(0x20..0x28)?.try_into().ok()?)).ok()?;
        let entry_size = u16_at(0x36)?;
        if entry_size < 4 {
            return None;
        }
        Some(ProgramHeaders {
            offset,
            entry_size,
            count: u16_at(0x38)?,
        })
    }

    fn end(&self) -> Option<usize> {
        self.offset
            .checked_add(self.entry_size.checked_mul(self.count)?)
    }
}

/// How many bytes from the start of the file [`is_static_elf`] needs, judged from its
/// first [`ELF_HEADER_LEN`]: a launcher is judged without reading all of it. `None` when
/// they are not an ELF64 LE header.
#[allow(dead_code)] // build.rs reads the whole file it embeds
pub fn headers_end(head: &[u8]) -> Option<usize> {
    Some(ProgramHeaders::read(head)?.end()?.max(ELF_HEADER_LEN))
}

/// `Some(true)` for an ELF64 LE executable without a program interpreter (`PT_INTERP`):
/// the kernel runs it as it is. `None` when it is not such a file, or `bytes` ends before
/// its program headers do.
pub fn is_static_elf(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let headers = ProgramHeaders::read(bytes)?;
    for i in 0..headers.count {
        let at = headers
            .offset
            .checked_add(i.checked_mul(headers.entry_size)?)?;
        let p_type = u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}
