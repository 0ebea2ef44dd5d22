"""Fast QR rendering of voucher content at error-correction level M with a fixed mask.

`qrcode` builds the symbol structure (finder, timing and alignment patterns, format and version
information) once per version and is the reference the tests compare against module by module.
Per token only the data part is computed here: alphanumeric bit packing, Reed-Solomon blocks with
table-driven GF(256) arithmetic, and placement along a precomputed module path. Choosing the mask by
penalty score (qrcode's default) costs 8 full renders per code; any mask is valid for every scanner.
"""

from __future__ import annotations

import base64
import struct
import zlib
from functools import lru_cache

from qrcode import base, constants, util
from qrcode.main import QRCode

EC_LEVEL = constants.ERROR_CORRECT_M
MASK = 0  # (row + col) % 2: a checkerboard, well balanced for random data
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ALNUM_VALUE = {ch: i for i, ch in enumerate(ALNUM)}
BORDER = 4  # the quiet zone the QR standard asks for
SCALE = 6  # pixels per module in the PNG

# GF(256) with the QR polynomial 0x11d
_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


class QrTooLarge(ValueError):
    """The content does not fit in a version-40 symbol."""


@lru_cache(maxsize=64)
def _generator_logs(degree: int) -> tuple[int, ...]:
    """Log form of the RS generator polynomial coefficients (leading 1 omitted)."""
    poly = [1]
    for i in range(degree):
        nxt = [0] * (len(poly) + 1)
        for j, coef in enumerate(poly):
            nxt[j] ^= coef
            if coef:
                nxt[j + 1] ^= _EXP[_LOG[coef] + i]
        poly = nxt
    return tuple(_LOG[c] for c in poly[1:])


def _rs_remainder(data: list[int], degree: int) -> list[int]:
    """ECC codewords: data(x)·x^degree mod generator(x)."""
    gen = _generator_logs(degree)
    rem = [0] * degree
    exp, log = _EXP, _LOG
    for byte in data:
        factor = byte ^ rem[0]
        rem = rem[1:] + [0]
        if factor:
            lf = log[factor]
            for k in range(degree):
                rem[k] ^= exp[gen[k] + lf]
    return rem


def _capacity_bits(version: int) -> int:
    return sum(b.data_count * 8 for b in base.rs_blocks(version, EC_LEVEL))


def alnum_bits(length: int, version: int) -> int:
    """Bits an alphanumeric segment of `length` characters takes (mode + count + data)."""
    return 4 + util.length_in_bits(util.MODE_ALPHA_NUM, version) + 11 * (length // 2) + 6 * (length % 2)


def version_for(content: str) -> int:
    """The smallest version holding `content` in alphanumeric mode at level M."""
    for version in range(1, 41):
        if alnum_bits(len(content), version) <= _capacity_bits(version):
            return version
    raise QrTooLarge(len(content))


def _codewords(content: str, version: int) -> list[int]:
    """Data codewords (alphanumeric segment, terminator, pad) followed by interleaved ECC."""
    acc, nbits = 0b0010, 4
    count_bits = util.length_in_bits(util.MODE_ALPHA_NUM, version)
    acc, nbits = (acc << count_bits) | len(content), nbits + count_bits
    values = [_ALNUM_VALUE[ch] for ch in content]
    for i in range(0, len(values) - 1, 2):
        acc, nbits = (acc << 11) | (values[i] * 45 + values[i + 1]), nbits + 11
    if len(values) % 2:
        acc, nbits = (acc << 6) | values[-1], nbits + 6
    limit = _capacity_bits(version)
    term = min(4, limit - nbits)
    acc, nbits = acc << term, nbits + term
    if nbits % 8:
        acc, nbits = acc << (8 - nbits % 8), nbits + (8 - nbits % 8)
    data = list(acc.to_bytes(nbits // 8, "big"))
    pad = (util.PAD0, util.PAD1)
    data += [pad[i % 2] for i in range(limit // 8 - len(data))]

    blocks, eccs, offset = [], [], 0
    for block in base.rs_blocks(version, EC_LEVEL):
        chunk = data[offset : offset + block.data_count]
        offset += block.data_count
        blocks.append(chunk)
        eccs.append(_rs_remainder(chunk, block.total_count - block.data_count))
    out = []
    for i in range(max(len(b) for b in blocks)):
        out += [b[i] for b in blocks if i < len(b)]
    for i in range(max(len(e) for e in eccs)):
        out += [e[i] for e in eccs if i < len(e)]
    return out


@lru_cache(maxsize=40)
def _template(version: int) -> tuple[tuple[bool, ...], tuple[int, ...], tuple[bool, ...]]:
    """Function patterns with format/version info, the data-module path, and the mask at each step."""
    q = QRCode(version=version, error_correction=EC_LEVEL, mask_pattern=MASK, border=0)
    n = q.modules_count = version * 4 + 17
    q.modules = [[None] * n for _ in range(n)]
    q.setup_position_probe_pattern(0, 0)
    q.setup_position_probe_pattern(n - 7, 0)
    q.setup_position_probe_pattern(0, n - 7)
    q.setup_position_adjust_pattern()
    q.setup_timing_pattern()
    q.setup_type_info(False, MASK)
    if version >= 7:
        q.setup_type_number(False)
    mask = util.mask_func(MASK)
    path: list[int] = []
    row, inc = n - 1, -1
    for col in range(n - 1, 0, -2):  # the zig-zag of ISO 18004 §7.7.3, as in qrcode.map_data
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if q.modules[row][c] is None:
                    path.append(row * n + c)
            row += inc
            if row < 0 or row >= n:
                row -= inc
                inc = -inc
                break
    flat = tuple(bool(v) for r in q.modules for v in r)
    flips = tuple(bool(mask(p // n, p % n)) for p in path)
    return flat, tuple(path), flips


def matrix(content: str) -> list[list[bool]]:
    """The module matrix (no quiet zone) of `content`, identical to qrcode's with mask_pattern=MASK."""
    if any(ch not in _ALNUM_VALUE for ch in content):
        raise ValueError("content must use the QR alphanumeric character set")
    version = version_for(content)
    flat, path, flips = _template(version)
    modules = list(flat)
    bits = int.from_bytes(bytes(_codewords(content, version)), "big")
    total = _total_bits(version)
    for i, pos in enumerate(path):
        bit = (bits >> (total - 1 - i)) & 1 if i < total else 0
        modules[pos] = bool(bit) ^ flips[i]
    n = version * 4 + 17
    return [modules[r * n : (r + 1) * n] for r in range(n)]


@lru_cache(maxsize=40)
def _total_bits(version: int) -> int:
    return sum(b.total_count for b in base.rs_blocks(version, EC_LEVEL)) * 8


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@lru_cache(maxsize=8)
def _scaled_bits(scale: int) -> tuple[str, str]:
    return "0" * scale, "1" * scale  # dark module = 0 (black) in a 1-bit grayscale PNG


def png(content: str, scale: int = SCALE, border: int = BORDER) -> bytes:
    """A 1-bit grayscale PNG of the QR code; each module row is packed once and repeated."""
    mods = matrix(content)
    n = len(mods) + 2 * border
    dark, light = _scaled_bits(scale)
    width = n * scale
    pad = "1" * ((-width) % 8)
    quiet = light * n + pad
    quiet_row = b"\x00" + int(quiet, 2).to_bytes(len(quiet) // 8, "big")
    rows = [quiet_row * (border * scale)]
    edge = light * border
    for r in mods:
        bits = edge + "".join(dark if v else light for v in r) + edge + pad
        rows.append((b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")) * scale)
    rows.append(quiet_row * (border * scale))
    ihdr = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + _png_chunk(b"IEND", b"")
    )


def svg(content: str, border: int = BORDER) -> str:
    """An SVG with one path; horizontal runs of dark modules become single rectangles."""
    mods = matrix(content)
    n = len(mods) + 2 * border
    parts = []
    for y, r in enumerate(mods):
        x = 0
        while x < len(r):
            if r[x]:
                start = x
                while x < len(r) and r[x]:
                    x += 1
                parts.append(f"M{start + border} {y + border}h{x - start}v1h{start - x}z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/><path fill="#000" d="{"".join(parts)}"/></svg>'
    )


def data_uri(content: str, kind: str) -> str:
    """The QR image as a data URI (kind png or svg)."""
    if kind == "png":
        return "data:image/png;base64," + base64.b64encode(png(content)).decode()
    return "data:image/svg+xml;base64," + base64.b64encode(svg(content).encode()).decode()
