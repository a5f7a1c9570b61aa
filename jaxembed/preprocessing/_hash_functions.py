"""TensorFlow's string hashes, bit for bit: ``to_hash_bucket_fast`` (FarmHash64), ``_strong`` (SipHash).

Keras's ``Hashing``, ``HashedCrossing`` and the lookups' OOV buckets hash with TensorFlow ops. The host
functions here give the same 64-bit values on Python strings and integers (integers are hashed as their
decimal text, as ``tf.strings.as_string`` writes them), using ``pyfarmhash`` (``farmhash.fingerprint64``
is FarmHash's ``Fingerprint64``, the function TensorFlow calls) and ``siphash24`` (SipHash-2-4 keyed with
the two salt integers, little-endian, as TensorFlow's ``StrongKeyedHash``).

The ``*_jnp`` functions compute the same hashes of integers with ``jax.numpy`` alone (64-bit words held
as pairs of ``uint32``, so they run under ``jax.jit`` with or without ``jax_enable_x64``); the tests check
both against TensorFlow.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

import farmhash
import jax
import jax.numpy as jnp
import numpy as np
import siphash24

_MASK64 = (1 << 64) - 1


def as_bytes(value: str | bytes | int) -> bytes:
    """The bytes TensorFlow hashes for ``value``: UTF-8 text, or an integer's decimal text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(int(value)).encode("ascii")


def siphash_key(salt: list[int]) -> bytes:
    """The 16-byte SipHash key of Keras's two ``salt`` integers (TensorFlow's ``key`` attribute)."""
    return struct.pack("<QQ", salt[0] & _MASK64, salt[1] & _MASK64)


def fingerprints(values: Iterable[str | bytes | int], salt: list[int] | None = None) -> np.ndarray:
    """64-bit hashes (``uint64``) of each value: FarmHash64 without ``salt``, SipHash-2-4 with it.

    Examples:
        >>> int(fingerprints(["hello"])[0] % 1000)  # tf.strings.to_hash_bucket_fast("hello", 1000)
        296
    """
    if salt is None:
        hashes = [farmhash.fingerprint64(as_bytes(value)) for value in values]
    else:
        key = siphash_key(salt)
        hashes = [
            int.from_bytes(siphash24.siphash24(as_bytes(value), key=key).digest(), "little")
            for value in values
        ]
    return np.array(hashes, dtype=np.uint64)


def buckets(values: Iterable[str | bytes | int], num_bins: int, salt: list[int] | None = None) -> np.ndarray:
    """``hash(value) % num_bins`` as ``int64``: TensorFlow's ``to_hash_bucket_fast`` / ``_strong``."""
    return (fingerprints(values, salt) % np.uint64(num_bins)).astype(np.int64)


# ----------------------------------------------------------------- 64-bit words as uint32 pairs
class _U64:
    """A 64-bit unsigned word as ``(hi, lo)`` uint32 arrays; the arithmetic wraps modulo 2**64."""

    __slots__ = ("hi", "lo")

    def __init__(self, hi: jax.Array, lo: jax.Array):
        self.hi = hi
        self.lo = lo

    @classmethod
    def const(cls, value: int) -> _U64:
        return cls(jnp.uint32((value >> 32) & 0xFFFFFFFF), jnp.uint32(value & 0xFFFFFFFF))

    @classmethod
    def small(cls, value: jax.Array) -> _U64:
        lo = value.astype(jnp.uint32)
        return cls(jnp.zeros_like(lo), lo)

    def __add__(self, other: _U64) -> _U64:
        lo = self.lo + other.lo
        carry = (lo < self.lo).astype(jnp.uint32)
        return _U64(self.hi + other.hi + carry, lo)

    def __sub__(self, other: _U64) -> _U64:
        lo = self.lo - other.lo
        borrow = (self.lo < other.lo).astype(jnp.uint32)
        return _U64(self.hi - other.hi - borrow, lo)

    def __xor__(self, other: _U64) -> _U64:
        return _U64(self.hi ^ other.hi, self.lo ^ other.lo)

    def __or__(self, other: _U64) -> _U64:
        return _U64(self.hi | other.hi, self.lo | other.lo)

    def __mul__(self, other: _U64) -> _U64:
        hi, lo = _mul32(self.lo, other.lo)
        return _U64(hi + self.lo * other.hi + self.hi * other.lo, lo)

    def __rshift__(self, shift: int) -> _U64:
        if shift == 0:
            return self
        if shift >= 32:
            return _U64(jnp.zeros_like(self.hi), self.hi >> (shift - 32))
        return _U64(self.hi >> shift, (self.lo >> shift) | (self.hi << (32 - shift)))

    def __lshift__(self, shift: int) -> _U64:
        if shift == 0:
            return self
        if shift >= 32:
            return _U64(self.lo << (shift - 32), jnp.zeros_like(self.lo))
        return _U64((self.hi << shift) | (self.lo >> (32 - shift)), self.lo << shift)

    def rotr(self, shift: int) -> _U64:
        return (self >> shift) | (self << (64 - shift))

    def rotl(self, shift: int) -> _U64:
        return (self << shift) | (self >> (64 - shift))

    def shift_mix(self) -> _U64:
        return self ^ (self >> 47)

    def where(self, condition: jax.Array, other: _U64) -> _U64:
        return _U64(jnp.where(condition, self.hi, other.hi), jnp.where(condition, self.lo, other.lo))

    def greater_equal(self, other: _U64) -> jax.Array:
        return (self.hi > other.hi) | ((self.hi == other.hi) & (self.lo >= other.lo))


def _mul32(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The full 64-bit product of two uint32 arrays as (hi, lo), through 16-bit halves."""
    a0, a1 = a & 0xFFFF, a >> 16
    b0, b1 = b & 0xFFFF, b >> 16
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    middle = (p00 >> 16) + (p01 & 0xFFFF) + (p10 & 0xFFFF)
    lo = (p00 & 0xFFFF) | (middle << 16)
    hi = p11 + (p01 >> 16) + (p10 >> 16) + (middle >> 16)
    return hi, lo


# ----------------------------------------------------------------- integers -> decimal bytes
_WIDTH = 24  # 20 characters at most ("-9223372036854775808"), padded so every 8-byte fetch is in range


def _decimal_bytes(values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The decimal text of each integer as ``(..., 24)`` uint32 bytes (zero padded) and its length."""
    signed = jnp.issubdtype(values.dtype, jnp.signedinteger)
    unsigned_type = jnp.uint64 if values.dtype.itemsize == 8 else jnp.uint32
    magnitude = values.astype(unsigned_type)
    negative = values < 0 if signed else jnp.zeros(values.shape, bool)
    magnitude = jnp.where(negative, jnp.zeros_like(magnitude) - magnitude, magnitude)
    digits_max = 20 if values.dtype.itemsize == 8 else 10
    digits = []
    remaining = magnitude
    count = jnp.zeros(values.shape, jnp.int32)
    ten = jnp.asarray(10, unsigned_type)
    for position in range(digits_max):  # least significant first
        count = jnp.where((remaining > 0) | (position == 0), position + 1, count)
        digits.append((remaining % ten).astype(jnp.uint32))
        remaining = remaining // ten
    digits = jnp.stack(digits, axis=-1)  # (..., digits_max)
    sign = negative.astype(jnp.int32)
    length = count + sign
    position = jnp.arange(_WIDTH)
    digit_index = count[..., None] - 1 - (position - sign[..., None])
    digit = jnp.take_along_axis(digits, jnp.clip(digit_index, 0, digits_max - 1), axis=-1) + ord("0")
    text = jnp.where(position < sign[..., None], jnp.uint32(ord("-")), digit)
    text = jnp.where(position < length[..., None], text, jnp.uint32(0))
    return text.astype(jnp.uint32), length


def _fetch(text: jax.Array, start: jax.Array, size: int) -> _U64:
    """The little-endian word of ``size`` (4 or 8) bytes of ``text`` at ``start`` (per element)."""
    index = jnp.clip(start[..., None] + jnp.arange(size), 0, _WIDTH - 1)
    chunk = jnp.take_along_axis(text, index, axis=-1)
    lo = chunk[..., 0] | (chunk[..., 1] << 8) | (chunk[..., 2] << 16) | (chunk[..., 3] << 24)
    if size == 4:
        return _U64(jnp.zeros_like(lo), lo)
    hi = chunk[..., 4] | (chunk[..., 5] << 8) | (chunk[..., 6] << 16) | (chunk[..., 7] << 24)
    return _U64(hi, lo)


_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def _hash_len16(u: _U64, v: _U64, mul: _U64) -> _U64:
    a = ((u ^ v) * mul).shift_mix()
    b = ((v ^ a) * mul).shift_mix()
    return b * mul


def _farmhash(text: jax.Array, length: jax.Array) -> _U64:
    """FarmHash ``Fingerprint64`` of texts of 1 to 20 bytes (``farmhashna::Hash64``'s short branches)."""
    k0, k1, k2 = _U64.const(_K0), _U64.const(_K1), _U64.const(_K2)
    mul = k2 + _U64.small(length * 2)
    zero = jnp.zeros_like(length)
    # 1 to 3 bytes
    a = text[..., 0]
    b = jnp.take_along_axis(text, (length >> 1)[..., None], -1)[..., 0]
    c = jnp.take_along_axis(text, jnp.clip(length - 1, 0)[..., None], -1)[..., 0]
    y = _U64.small(a + (b << 8))
    z = _U64.small(length.astype(jnp.uint32) + (c << 2))
    short = ((y * k2) ^ (z * k0)).shift_mix() * k2
    # 4 to 7 bytes
    first32 = _fetch(text, zero, 4)
    medium = _hash_len16(_U64.small(length) + (first32 << 3), _fetch(text, length - 4, 4), mul)
    # 8 to 16 bytes
    a8 = _fetch(text, zero, 8) + k2
    b8 = _fetch(text, length - 8, 8)
    c8 = b8.rotr(37) * mul + a8
    d8 = (a8.rotr(25) + b8) * mul
    long = _hash_len16(c8, d8, mul)
    # 17 to 32 bytes
    a17 = _fetch(text, zero, 8) * k1
    b17 = _fetch(text, zero + 8, 8)
    c17 = _fetch(text, length - 8, 8) * mul
    d17 = _fetch(text, length - 16, 8) * k2
    longer = _hash_len16((a17 + b17).rotr(43) + c17.rotr(30) + d17, a17 + (b17 + k2).rotr(18) + c17, mul)
    result = longer.where(length > 16, long.where(length >= 8, medium.where(length >= 4, short)))
    return result


def _sip_round(v0: _U64, v1: _U64, v2: _U64, v3: _U64) -> tuple[_U64, _U64, _U64, _U64]:
    v0 = v0 + v1
    v1 = v1.rotl(13) ^ v0
    v0 = v0.rotl(32)
    v2 = v2 + v3
    v3 = v3.rotl(16) ^ v2
    v0 = v0 + v3
    v3 = v3.rotl(21) ^ v0
    v2 = v2 + v1
    v1 = v1.rotl(17) ^ v2
    v2 = v2.rotl(32)
    return v0, v1, v2, v3


def _siphash(text: jax.Array, length: jax.Array, salt: list[int]) -> _U64:
    """SipHash-2-4 of texts of at most 20 bytes, keyed with the two ``salt`` integers."""
    k0, k1 = _U64.const(salt[0] & _MASK64), _U64.const(salt[1] & _MASK64)
    v0 = k0 ^ _U64.const(0x736F6D6570736575)
    v1 = k1 ^ _U64.const(0x646F72616E646F6D)
    v2 = k0 ^ _U64.const(0x6C7967656E657261)
    v3 = k1 ^ _U64.const(0x7465646279746573)
    full_blocks = length // 8
    for block in range(2):  # at most two whole 8-byte blocks in 20 bytes
        word = _fetch(text, jnp.full_like(length, 8 * block), 8)
        w0, w1, w2, w3 = v0, v1, v2, v3 ^ word
        w0, w1, w2, w3 = _sip_round(w0, w1, w2, w3)
        w0, w1, w2, w3 = _sip_round(w0, w1, w2, w3)
        w0 = w0 ^ word
        take = full_blocks > block
        v0, v1, v2, v3 = (w.where(take, v) for w, v in zip((w0, w1, w2, w3), (v0, v1, v2, v3)))
    last = _fetch(text, full_blocks * 8, 8)  # the bytes after the text are zero
    last = last | (_U64.small(length) << 56)
    v3 = v3 ^ last
    v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 = v0 ^ last
    v2 = v2 ^ _U64.const(0xFF)
    for _ in range(4):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def _remainder(word: _U64, divisor: int) -> jax.Array:
    """``word % divisor`` for ``1 <= divisor < 2**63``, by binary long division (no 64-bit division)."""
    d = _U64.const(divisor)

    def step(index: jax.Array, remainder: _U64) -> _U64:
        bit = 63 - index
        half = jnp.where(bit >= 32, word.hi, word.lo)
        offset = (bit % 32).astype(jnp.uint32)
        remainder = (remainder << 1) | _U64(jnp.zeros_like(half), (half >> offset) & 1)
        return (remainder - d).where(remainder.greater_equal(d), remainder)

    zero = _U64(jnp.zeros_like(word.hi), jnp.zeros_like(word.lo))
    hi, lo = jax.lax.fori_loop(0, 64, lambda i, r: tuple(_pair(step(i, _U64(*r)))), (zero.hi, zero.lo))
    if divisor < 2**31:
        return lo.astype(jnp.int32)
    if not jax.config.jax_enable_x64:
        raise ValueError(
            f"Hash buckets of num_bins={divisor} do not fit in int32; enable jax_enable_x64 to use them on "
            "JAX arrays."
        )
    return (hi.astype(jnp.int64) << 32) | lo.astype(jnp.int64)


def _pair(word: _U64) -> tuple[jax.Array, jax.Array]:
    return word.hi, word.lo


def buckets_jnp(values: jax.Array, num_bins: int, salt: list[int] | None = None) -> jax.Array:
    """:func:`buckets` of an integer JAX array, in ``jax.numpy`` (traceable; same values as TensorFlow).

    Examples:
        >>> buckets_jnp(jnp.array([7, -12]), 10).tolist() == buckets([7, -12], 10).tolist()
        True
    """
    return _buckets_jnp(values, num_bins, None if salt is None else tuple(salt))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _buckets_jnp(values: jax.Array, num_bins: int, salt: tuple[int, int] | None) -> jax.Array:
    with jax.named_scope("hash_buckets"):
        text, length = _decimal_bytes(values)
        word = _farmhash(text, length) if salt is None else _siphash(text, length, list(salt))
        return _remainder(word, num_bins)
