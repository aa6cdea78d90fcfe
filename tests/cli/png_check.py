#!/usr/bin/env python3
"""Checks a PNG written by distrifuse (standard library only).

usage: png_check.py FILE WIDTH HEIGHT [PARAMETERS]
Verifies the signature and chunk CRCs, 8-bit RGB of the given size, that the pixel data
decodes (zlib + filter reconstruction) and is not constant, and, if PARAMETERS is given, that the
tEXt chunk "parameters" equals it exactly.
"""
import struct
import sys
import zlib


def read_png(path):
    """Returns (width, height, rgb bytes [h][w][3], {tEXt key: value})."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG signature")
    pos, idat, text, ihdr = 8, b"", {}, None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError("bad CRC in chunk %r" % kind)
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            text[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"IEND":
            break
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype != 2 or interlace != 0:
        raise ValueError("expected 8-bit RGB non-interlaced, got depth %d type %d" % (depth, ctype))
    raw = zlib.decompress(idat)
    stride = w * 3
    if len(raw) != h * (stride + 1):
        raise ValueError("pixel data has %d bytes, expected %d" % (len(raw), h * (stride + 1)))
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
            elif f != 0:
                raise ValueError("bad filter %d" % f)
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return w, h, bytes(out), text


def main():
    path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pw, ph, rgb, text = read_png(path)
    if (pw, ph) != (w, h):
        sys.exit("size %dx%d, expected %dx%d" % (pw, ph, w, h))
    if min(rgb) == max(rgb):
        sys.exit("constant image")
    if len(sys.argv) > 4:
        want = sys.argv[4]
        got = text.get("parameters")
        if got != want:
            sys.exit("parameters chunk:\n%r\nexpected:\n%r" % (got, want))
    print("png ok: %dx%d, %d text chunks" % (pw, ph, len(text)))


if __name__ == "__main__":
    main()
