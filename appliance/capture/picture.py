"""The synthetic camera's moving test picture, with its frame index drawn as a barcode.

The barcode lets anyone read back which capture frame a decoded picture is
(dropped frames, frame-exact clips). The picture's luma stays well below white so
that only the sync-marker frame is white.
"""

from __future__ import annotations

import numpy as np

BARCODE_BITS = 24
CELL = 32              # each bit is a CELL x CELL block, top left, most significant first
LOW, HIGH = 40, 200    # luma of a 0 bit and a 1 bit
WHITE_Y = 235          # video-range white
MAX_PICTURE_Y = 200


class SyntheticPicture:
    """Makes raw YUV 4:2:0 frames: a scrolling gradient, a moving box and the barcode."""

    def __init__(self, width: int, height: int) -> None:
        if width < BARCODE_BITS * CELL or height < 2 * CELL:
            raise ValueError(f"test picture needs at least {BARCODE_BITS * CELL}x{2 * CELL}")
        self.width, self.height = width, height
        period = 256
        y, x = np.mgrid[0:height, 0:width + period]
        # A diagonal gradient, periodic in x so a scrolling window can be sliced out of it.
        self._band = (30 + ((x + y) % period) * 120 // period).astype(np.uint8)
        self._period = period
        cw, ch = width // 2, height // 2
        u = np.linspace(90, 170, cw, dtype=np.uint8)[None, :].repeat(ch, 0)
        v = np.linspace(170, 90, ch, dtype=np.uint8)[:, None].repeat(cw, 1)
        self._chroma = u.tobytes() + v.tobytes()
        self._white = (np.full(width * height, WHITE_Y, np.uint8).tobytes()
                       + np.full(cw * ch * 2, 128, np.uint8).tobytes())

    def frame(self, index: int, *, white: bool = False) -> bytes:
        """The raw yuv420p bytes of frame `index` (the white marker frame if `white`)."""
        if white:
            return self._white
        offset = (index * 4) % self._period
        luma = np.ascontiguousarray(self._band[:, offset:offset + self.width])
        box = 120
        bx = (index * 7) % (self.width - box)
        by = self.height // 2 - box // 2
        luma[by:by + box, bx:bx + box] = 170
        for bit in range(BARCODE_BITS):
            on = (index >> (BARCODE_BITS - 1 - bit)) & 1
            luma[0:CELL, bit * CELL:(bit + 1) * CELL] = HIGH if on else LOW
        return luma.tobytes() + self._chroma


def read_frame_index(luma: np.ndarray) -> int:
    """Read the barcode back from a decoded luma plane (height x width, uint8)."""
    value = 0
    mid = (LOW + HIGH) // 2
    for bit in range(BARCODE_BITS):
        cell = luma[CELL // 4:3 * CELL // 4, bit * CELL + CELL // 4:(bit + 1) * CELL - CELL // 4]
        value = (value << 1) | int(cell.mean() > mid)
    return value


def is_white(luma: np.ndarray) -> bool:
    """True for the sync-marker frame: every part of the picture is (nearly) white."""
    return bool(luma.min() > WHITE_Y - 25)


class Shrinker:
    """Nearest-neighbour resize of raw yuv420p frames: the test picture's live preview
    (the barcode's cells stay whole blocks when the sizes divide evenly)."""

    def __init__(self, width: int, height: int, to_width: int, to_height: int) -> None:
        self.width, self.height = width, height
        self._rows = np.arange(to_height) * height // to_height
        self._cols = np.arange(to_width) * width // to_width
        self._chroma_rows = np.arange(to_height // 2) * (height // 2) // (to_height // 2)
        self._chroma_cols = np.arange(to_width // 2) * (width // 2) // (to_width // 2)

    def __call__(self, frame: bytes) -> bytes:
        """The smaller frame's raw yuv420p bytes."""
        w, h = self.width, self.height
        data = np.frombuffer(frame, np.uint8)
        luma = data[:w * h].reshape(h, w)
        chroma = data[w * h:].reshape(2, h // 2, w // 2)
        small_luma = luma[self._rows][:, self._cols]
        small_chroma = chroma[:, self._chroma_rows][:, :, self._chroma_cols]
        return small_luma.tobytes() + small_chroma.tobytes()
