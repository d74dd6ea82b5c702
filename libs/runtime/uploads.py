"""Uploaded files are what their bytes say, not what the client declares (ADR 0030).

The services accept three kinds of document: PDF, PNG and JPEG. Each format opens with a
fixed signature (ISO 32000 ``%PDF-``; the PNG specification's eight bytes; JPEG's SOI
marker followed by a marker's ``FF``), so a table of three prefixes decides it: a library
that knows hundreds of types would only guess among types we refuse anyway. A document
whose bytes are not of its declared type (HTML declared as PDF, a PNG declared as JPEG) is
refused with 422 ``content-type-mismatch``. Documents are served back as attachments with
``X-Content-Type-Options: nosniff``, so no browser renders one as a page.
"""

from __future__ import annotations

from .problems import ProblemError

SIGNATURES: dict[str, bytes] = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


def sniffed_type(data: bytes) -> str | None:
    """The content type the bytes open with, of the ones accepted; None for anything else."""
    for content_type, signature in SIGNATURES.items():
        if data.startswith(signature):
            return content_type
    return None


def check_declared_type(data: bytes, declared: str, *, field: str) -> None:
    """Refuse (422 ``content-type-mismatch``) bytes that are not of the declared type."""
    found = sniffed_type(data)
    if found != declared:
        raise ProblemError(
            f"{field} is declared {declared} but its bytes are "
            f"{found or 'none of ' + ', '.join(SIGNATURES)}", status=422,
            code="content-type-mismatch", title="Content type mismatch", field=field,
            declared=declared, sniffed=found)


def attachment_headers(filename: str) -> dict[str, str]:
    """Headers of a served upload: downloaded, never rendered, never sniffed."""
    return {"Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff"}
