"""Compressed event streams: zstd, br or gzip, chosen from the client's Accept-Encoding.

Each stream has its own compressor, flushed after every write so that no event waits in it: the
cost is per client, in CPU per write and in the compressor's memory for as long as the stream
lives. Each one is set up small for that (measured in bench/RESULTS.md, "Compression"): a fast
level and a window of a few KiB to tens of KiB, since what repeats in event JSON (keys, type
names, resource ids) repeats within a few events.
"""

import zlib
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

import brotli
import zstandard

ENCODINGS: Final = ("zstd", "br", "gzip")

_GZIP_LEVEL: Final = 1
_GZIP_WBITS: Final = 16 + 12  # 16+: a gzip header and trailer, not raw zlib; a 4 KiB window
_GZIP_MEMLEVEL: Final = 3
# Level 1, a 4 KiB window, small hash tables: ~49 KiB a stream (the defaults: ~1.2 MiB).
_ZSTD_PARAMETERS: Final = zstandard.ZstdCompressionParameters.from_level(
    1, window_log=12, hash_log=8, chain_log=8
)
# Quality 1: ~15 KiB a stream; from quality 2 on, brotli's tables take ~270 KiB.
_BROTLI_QUALITY: Final = 1
_BROTLI_WINDOW_LOG: Final = 16


class StreamEncoder(Protocol):
    def encode(self, chunk: bytes, *, final: bool = False) -> bytes:
        """`chunk` compressed and flushed: a client can decode it all at once."""


class GzipEncoder:
    __slots__ = ("_compressor",)

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS, _GZIP_MEMLEVEL)

    def encode(self, chunk: bytes, *, final: bool = False) -> bytes:
        return self._compressor.compress(chunk) + self._compressor.flush(
            zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
        )


class ZstdEncoder:
    __slots__ = ("_compressor",)

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(compression_params=_ZSTD_PARAMETERS).compressobj()

    def encode(self, chunk: bytes, *, final: bool = False) -> bytes:
        flush = zstandard.COMPRESSOBJ_FLUSH_FINISH if final else zstandard.COMPRESSOBJ_FLUSH_BLOCK
        return self._compressor.compress(chunk) + self._compressor.flush(flush)


class BrotliEncoder:
    __slots__ = ("_compressor",)

    def __init__(self) -> None:
        self._compressor = brotli.Compressor(
            mode=brotli.MODE_TEXT, quality=_BROTLI_QUALITY, lgwin=_BROTLI_WINDOW_LOG
        )

    def encode(self, chunk: bytes, *, final: bool = False) -> bytes:
        out = bytes(self._compressor.process(chunk))
        return out + bytes(self._compressor.finish() if final else self._compressor.flush())


_ENCODERS: Final[dict[str, type[GzipEncoder] | type[ZstdEncoder] | type[BrotliEncoder]]] = {
    "gzip": GzipEncoder,
    "zstd": ZstdEncoder,
    "br": BrotliEncoder,
}


def new_encoder(name: str) -> StreamEncoder:
    return _ENCODERS[name]()


def negotiate(accept_encoding: str, preferred: Sequence[str]) -> str | None:
    """The first of `preferred` (the edge's order) that the client accepts (q > 0); None for none.

    `*` accepts whatever is not named; `identity` and unknown codings are ignored.
    """
    offered: dict[str, float] = {}
    for coding in accept_encoding.split(","):
        name, _, params = coding.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        offered[name] = quality
    for name in preferred:
        quality = offered.get(name, offered.get("*", 0.0))
        if quality > 0:
            return name
    return None


def parse_encodings(names: Iterable[str]) -> tuple[str, ...]:
    """Validated names, in order, without repeats.

    Raises:
        ValueError: naming an encoding the edge does not have.
    """
    chosen: list[str] = []
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name not in ENCODINGS:
            raise ValueError(f"unknown stream encoding {name!r}; known: {', '.join(ENCODINGS)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)
