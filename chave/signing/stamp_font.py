"""The font of the visible signature stamp: DejaVu Sans, embedded, so that every name prints.

PDF's standard Helvetica only knows the Latin-1 letters: pyHanko writes any other name (Łukasz,
Dvořák, Şahin, Кузьменко) as raw UTF-16 bytes that Helvetica draws as "þÿ" and garbage. The stamp
therefore embeds DejaVu Sans (Debian's ``fonts-dejavu-core``, which ``make run``/``make test``
install) through pyHanko's OpenType engine (fontTools and HarfBuzz), prepared once per process:

- **cut to the scripts names are written in** here — Latin with its extensions, Greek, Cyrillic,
  combining accents and general punctuation — without the layout tables (no kerning or ligatures
  on a stamp), so that the subset pyHanko cuts for each signature is quick (about 15 ms and 6 KB
  a visible signature here, not ~100 ms; the first one in a process also prepares the font,
  ~0.3 s); a character outside these prints as the font's empty box, never as another letter;
- **scaled to 1,000 units per em**: pyHanko 0.38 writes a TrueType font's glyph widths (``/W``)
  in the font's own units, which PDF reads as thousandths of an em; DejaVu's 2,048 units would
  space every letter twice as wide.

The text stays extractable and searchable: pyHanko adds a ``ToUnicode`` map and ``ActualText``.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

DEJAVU_SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
UNITS_PER_EM = 1000
# Latin-1 and Latin Extended-A/B, IPA, spacing modifiers and combining accents, Greek, Cyrillic,
# Latin Extended Additional, general punctuation (dashes, quotes), the euro sign.
RANGES = ((0x20, 0x7E), (0xA0, 0x36F), (0x370, 0x3FF), (0x400, 0x52F), (0x1E00, 0x1EFF), (0x2010, 0x205E),
          (0x20AC, 0x20AC))


@functools.lru_cache(maxsize=4)
def prepared(font_file: str) -> bytes:
    """``font_file`` cut to :data:`RANGES`, without layout tables, at :data:`UNITS_PER_EM`."""
    import logging

    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    font = TTFont(font_file)
    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["GPOS", "GSUB", "GDEF", "kern"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    # fontTools says, at warning level, that it drops DejaVu's FFTM (a FontForge timestamp).
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[c for low, high in RANGES for c in range(low, high + 1)])
    subsetter.subset(font)
    if font["head"].unitsPerEm != UNITS_PER_EM:
        scale_upem(font, UNITS_PER_EM)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class StampFont(GlyphAccumulatorFactory):
    """pyHanko's OpenType engine on :func:`prepared` ``font_file``; ``font_size`` must be the text
    box's (pyHanko measures with it)."""

    def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(writer=writer, font_handle=io.BytesIO(prepared(self.font_file)),
                                font_size=self.font_size, ot_script_tag=self.ot_script_tag,
                                ot_language_tag=self.ot_language_tag, writing_direction=self.writing_direction,
                                bcp47_lang_code=self.bcp47_lang_code, obj_stream=obj_stream)
