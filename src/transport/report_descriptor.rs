//! Just enough of a HID report descriptor (HID 1.11 §6.2.2) to find the
//! usage pages it declares: the FIDO Alliance page is 0xF1D0 (CTAP 2.1
//! §11.2.8.1).

/// The FIDO Alliance HID usage page.
pub const FIDO_USAGE_PAGE: u32 = 0xF1D0;

/// Largest descriptor read from sysfs (the kernel caps them at 4096 bytes).
pub const MAX_DESCRIPTOR: usize = 4096;

/// Every Usage Page global item in `desc`, in order. Malformed trailing
/// bytes end the walk; nothing panics on any input.
pub fn usage_pages(desc: &[u8]) -> Vec<u32> {
    let mut pages = Vec::new();
    let mut i = 0;
    while i < desc.len() {
        let prefix = desc[i];
        if prefix == 0xFE {
            // Long item: 0xFE, data size, tag, data (§6.2.2.3).
            let Some(&size) = desc.get(i + 1) else { break };
            i += 3 + size as usize;
            continue;
        }
        let size = match prefix & 0x03 {
            3 => 4,
            n => n as usize,
        };
        let Some(data) = desc.get(i + 1..i + 1 + size) else {
            break;
        };
        // Usage Page: type Global (01), tag 0 → prefix 0000 01 nn.
        if prefix & 0xFC == 0x04 {
            let mut v = 0u32;
            for (k, b) in data.iter().enumerate() {
                v |= u32::from(*b) << (8 * k);
            }
            pages.push(v);
        }
        i += 1 + size;
    }
    pages
}

/// Whether a descriptor declares the FIDO usage page.
pub fn is_fido(desc: &[u8]) -> bool {
    usage_pages(desc).contains(&FIDO_USAGE_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report descriptor of a YubiKey 5's FIDO interface.
    pub const YUBIKEY_FIDO: [u8; 34] = [
        0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75,
        0x08, 0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95,
        0x40, 0x91, 0x02, 0xC0,
    ];
    /// A boot keyboard (usage page 0x01 Generic Desktop, then 0x07, 0x08).
    const KEYBOARD: [u8; 20] = [
        0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0x29, 0xE7, 0x05, 0x08, 0x19,
        0x01, 0x29, 0x05, 0x91, 0x02,
    ];

    #[test]
    fn finds_the_fido_page_and_only_there() {
        assert_eq!(usage_pages(&YUBIKEY_FIDO), [0xF1D0]);
        assert!(is_fido(&YUBIKEY_FIDO));
        assert_eq!(usage_pages(&KEYBOARD), [0x01, 0x07, 0x08]);
        assert!(!is_fido(&KEYBOARD));
    }

    #[test]
    fn truncated_long_and_garbage_descriptors_never_panic() {
        assert!(!is_fido(&YUBIKEY_FIDO[..2]));
        assert!(!is_fido(&[0xFE, 0x05, 0x00, 1, 2]));
        assert!(is_fido(&[0xFE, 0x01, 0x00, 0xAA, 0x06, 0xD0, 0xF1]));
        for seed in 0..2000u32 {
            let v: Vec<u8> = (0..(seed % 64))
                .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 97) >> 7) as u8)
                .collect();
            let _ = usage_pages(&v);
        }
    }
}
