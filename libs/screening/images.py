"""Avatar fingerprints: is this avatar a protected logo, re-encoded, resized or recoloured?

A SHA-256 of the bytes catches the same file; a perceptual hash (DCT of a 32x32 greyscale
thumbnail, 64 bits) survives re-encoding, scaling and small edits, so near-copies of a
logo are a small Hamming distance apart while unrelated images are ~32 bits apart.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 5 * 1024 * 1024
# An avatar needs no more than a few megapixels; a small file that claims more is a
# decompression bomb (a 5 MB PNG can decode to gigabytes). Checked before decoding.
MAX_PIXELS = 25_000_000
HASH_BITS = 64


class InvalidImageError(ValueError):
    """The bytes are not an image we accept (not an image, too large, corrupt)."""


@dataclass(frozen=True, slots=True)
class AvatarFingerprint:
    """``sha256``: hex digest of the bytes; ``phash``: 16 hex digits of the perceptual hash."""

    sha256: str
    phash: str


def avatar_fingerprint(data: bytes) -> AvatarFingerprint:
    """Fingerprint an uploaded avatar; raises :class:`InvalidImageError` for anything else."""
    if not data:
        raise InvalidImageError("empty image")
    if len(data) > MAX_BYTES:
        raise InvalidImageError(f"image of {len(data):,} bytes exceeds {MAX_BYTES:,}")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its limit raises) on huge images; we refuse them
            # ourselves below, before any pixel is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise InvalidImageError(
                        f"image of {width}x{height} pixels exceeds {MAX_PIXELS:,}")
                image.seek(0)  # the first frame of an animation
                flat = _flatten(ImageOps.exif_transpose(image))
                phash = str(imagehash.phash(flat))
    except InvalidImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"not an image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidImageError(f"corrupt image: {exc}") from exc
    return AvatarFingerprint(hashlib.sha256(data).hexdigest(), phash)


def _flatten(image: Image.Image) -> Image.Image:
    # Transparent pixels keep arbitrary colours underneath (often black); a logo saved
    # with and without its background must hash alike, so composite onto white.
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P"
                                               and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode not in ("RGB", "L") else image


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two perceptual hashes in hex (0 = identical, 64 = opposite)."""
    return (_bits(a) ^ _bits(b)).bit_count()


def _bits(phash: str) -> int:
    try:
        value = int(phash, 16)
    except (TypeError, ValueError):
        raise ValueError(f"not a hex perceptual hash: {phash!r}") from None
    if value >> HASH_BITS:
        raise ValueError(f"perceptual hash longer than {HASH_BITS} bits: {phash!r}")
    return value


class LogoIndex:
    """Perceptual hashes of protected logos by id; nearest() scans them all.

    A scan of a few thousand ints with ``int.bit_count`` takes well under a millisecond,
    which is simpler and as fast as a BK-tree at this size.
    """

    def __init__(self) -> None:
        self._hashes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, logo_id: str, phash: str) -> None:
        self._hashes[logo_id] = _bits(phash)

    def remove(self, logo_id: str) -> None:
        """Forget ``logo_id``; does nothing if it is not indexed."""
        self._hashes.pop(logo_id, None)

    def nearest(self, phash: str, max_distance: int = 8) -> list[tuple[str, int]]:
        """``(logo id, distance)`` of every logo within ``max_distance`` bits, nearest first."""
        bits = _bits(phash)
        found = [(logo_id, d) for logo_id, other in self._hashes.items()
                 if (d := (bits ^ other).bit_count()) <= max_distance]
        found.sort(key=lambda item: (item[1], item[0]))
        return found
