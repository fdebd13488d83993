//! The chart font, embedded so PNG text needs no system font lookup.
//!
//! DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`),
//! taken from Debian's `fonts-dejavu-core`.

use std::sync::Once;

use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name charts use.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process).
pub(crate) fn ensure_registered() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a known-good TTF shipped with the crate; a failure here
        // would be a packaging bug caught by the tests.
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans font is invalid"));
    });
}
