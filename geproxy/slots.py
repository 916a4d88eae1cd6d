"""Hash slots exactly as Redis Cluster computes them."""

from binascii import crc_hqx

SLOTS = 16384


def key_slot(key):
    """CRC16 (XMODEM, which binascii's crc_hqx is) of the key, or of its {hashtag}:
    the part between the first '{' and the next '}', when that part is not empty."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc_hqx(key, 0) & 16383
