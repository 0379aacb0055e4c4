"""How a sheet is read: the workbook's sheet, a text file's separator and encoding.

Excel saves "CSV" with the separator and code page of the computer's locale (``;`` and
Windows-1252 in much of Europe) and "Unicode Text" as tab-separated UTF-16 with a byte-order
mark. ``--separator`` and ``--encoding`` read such a file as it is. Nothing is guessed: without
flags a text file is comma-separated UTF-8 (a BOM decides only between UTF-8 and UTF-16, since
it says so itself); a message may *suggest* a flag, never act on one.

Light on purpose (no polars): the CLI and the settings check these values before anything loads.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from batch.errors import InputFileError, UsageError

# Text files whose separator is a tab unless told otherwise (Excel's "Text" and "Unicode Text"
# are saved as .txt).
TAB_EXTENSIONS: Final = frozenset({".tsv", ".txt"})
_NAMED_SEPARATORS: Final = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF8_NAMES: Final = frozenset({"utf-8", "utf-8-sig"})
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Reading:
    """``--sheet``, ``--separator``, ``--encoding`` as given (None: not given), checked."""

    sheet: str | None = None
    separator: str | None = None
    encoding: str | None = None


def check_sheet(value: object) -> str:
    text = str(value)
    if not text.strip():
        raise UsageError("the sheet name is empty: give the name on the workbook's tab")
    return text


def check_separator(value: object) -> str:
    """One ASCII character; ``tab``, ``\\t``, ``comma`` and ``semicolon`` name theirs."""
    text = str(value)
    text = _NAMED_SEPARATORS.get(text.lower(), text)
    usable = text == "\t" or (text.isascii() and text.isprintable() and text != '"')
    if len(text) != 1 or not usable:
        raise UsageError(f"separator {value!r} is not one character: write ';', ',', '|' or tab")
    return text


def check_encoding(value: object) -> str:
    """An encoding Python knows (cp1252, latin-1, utf-16...), by its canonical name."""
    text = str(value).strip()
    try:
        info = codecs.lookup(text)
    except LookupError:
        raise UsageError(
            f"encoding {value!r} is not one Python knows: write e.g. cp1252 (Excel's Western "
            "European), cp1250, cp1251, latin-1, utf-16 or utf-8"
        ) from None
    if not _is_text_encoding(info):
        raise UsageError(f"encoding {value!r} is not a text encoding: write e.g. cp1252")
    return info.name


def _is_text_encoding(info: codecs.CodecInfo) -> bool:
    # Codecs such as rot13, base64 or zlib are registered too but do not decode bytes to text.
    return getattr(info, "_is_text_encoding", True) is not False


def separator_label(separator: str) -> str:
    """The separator as a flag would be typed: ``tab`` or the quoted character."""
    return "tab" if separator == "\t" else repr(separator)


@dataclass(frozen=True, slots=True)
class TextDialect:
    """A text file's separator and encoding, as ``reading`` and the file itself decide."""

    separator: str
    encoding: str  # canonical codecs name
    told: bool  # the encoding came from --encoding (not from a BOM or the default)

    @property
    def utf8(self) -> bool:
        return self.encoding in _UTF8_NAMES

    @classmethod
    def of(cls, path: Path, reading: Reading) -> TextDialect:
        """``--separator``, else tab for .tsv/.txt and UTF-16 files, else a comma;
        ``--encoding``, else UTF-16 when the file starts with its BOM, else UTF-8."""
        with path.open("rb") as file:
            utf16 = file.read(2) in _UTF16_BOMS
        separator = reading.separator
        if separator is None:
            tabbed = utf16 or path.suffix.lower() in TAB_EXTENSIONS
            separator = "\t" if tabbed else ","
        if reading.encoding is not None:
            return cls(separator, check_encoding(reading.encoding), told=True)
        return cls(separator, "utf-16" if utf16 else "utf-8", told=False)


def as_utf8(path: Path, dialect: TextDialect) -> bytes:
    """The file's text as UTF-8 bytes (for a file that is not UTF-8), decoded in chunks so a
    bad byte is named with its offset; raises InputFileError."""
    decoder = codecs.getincrementaldecoder(dialect.encoding)()
    out = io.BytesIO()
    offset = 0
    with path.open("rb") as file:
        try:
            while chunk := file.read(_CHUNK):
                out.write(decoder.decode(chunk).encode("utf-8", "surrogatepass"))
                offset += len(chunk)
            out.write(decoder.decode(b"", final=True).encode("utf-8", "surrogatepass"))
        except UnicodeError as exc:  # UnicodeDecodeError, or utf-16 finding no byte-order mark
            why = f"--encoding {dialect.encoding}" if dialect.told else "its byte-order mark"
            where = offset + exc.start if isinstance(exc, UnicodeDecodeError) else offset
            raise InputFileError(
                path,
                f"is not {dialect.encoding} text as {why} says (bad byte near offset {where}): "
                "name the encoding it was saved in with --encoding, or save it as UTF-8",
            ) from exc
    text = out.getvalue()
    return text[3:] if text.startswith(codecs.BOM_UTF8) else text


def encoding_hint(sample: bytes) -> str:
    """Which ``--encoding`` would likely read bytes that are not UTF-8 (a suggestion only)."""
    even, odd = sample[0::2], sample[1::2]
    if sample and odd.count(0) > len(odd) // 3:
        return "--encoding utf-16-le (it looks like UTF-16 without a byte-order mark)"
    if sample and even.count(0) > len(even) // 3:
        return "--encoding utf-16-be (it looks like UTF-16 without a byte-order mark)"
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError:
        return "--encoding NAME (the code page it was saved in: cp1250, cp1251, latin-1...)"
    return (
        '--encoding cp1252 (what Excel\'s "CSV" uses on Western European Windows; name '
        "another code page if the sheet came from elsewhere)"
    )


def check_utf8(path: Path, *, suggest: bool = False) -> None:
    """Decode the file in chunks (no copy kept) so a stray byte is named, not replaced.

    ``suggest``: a text sheet, where ``--encoding`` can read it as it is: the message names
    the likely flag (from the bytes around the bad one).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, last = 0, b""
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                not_utf8(path, offset + exc.start, exc, chunk if suggest else None)
            offset, last = offset + len(chunk), chunk
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            not_utf8(path, offset, exc, last if suggest else None)


def not_utf8(
    path: Path, offset: int, exc: UnicodeDecodeError, sample: bytes | None = None
) -> NoReturn:
    """``sample``: bytes of a text sheet around the bad one, to suggest the --encoding flag."""
    fix = "save or export it as UTF-8"
    if sample is not None:
        fix = f"read it as it is with {encoding_hint(sample)}, or save it as UTF-8"
    raise InputFileError(path, f"is not UTF-8 text (bad byte near offset {offset}): {fix}") from exc
