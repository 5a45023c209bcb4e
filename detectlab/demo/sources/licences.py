"""Licence parsing: Debian DEP-5 copyright files, gcompris attribution READMEs, SPDX-style names."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from pathlib import Path


def parse_dep5(copyright_file: Path) -> list[tuple[list[str], str]]:
    """``(file patterns, licence)`` per ``Files:`` stanza of a Debian copyright file.

    Only the fields needed to attribute image files are read; standalone ``License:``
    paragraphs (licence texts) are ignored.
    """
    stanzas: list[tuple[list[str], str]] = []
    text = Path(copyright_file).read_text(encoding="utf-8", errors="replace")
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        files = fields.get("files") or fields.get("file")
        if files and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            stanzas.append((files.split(), licence))
    return stanzas


def dep5_licence(stanzas: list[tuple[list[str], str]], path: str) -> str | None:
    """Licence of ``path`` (relative to the upstream source tree): last match wins (DEP-5).

    Upstream often converted images (``x.jpg`` in the copyright file, ``x.webp`` in the
    package), so a pattern also matches when only the extension differs.
    """
    stem, dot, _ = path.rpartition(".")
    names = [path] + ([f"{stem}.{e}" for e in ("jpg", "jpeg", "JPG", "png", "svg", "webp")] if dot else [])
    found = None
    for patterns, licence in stanzas:
        if any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names):
            found = licence
    return found


def normalise_licence(name: str) -> str:
    """Spell licence names the SPDX way ("CC-BY-SA 4.0" -> "CC-BY-SA-4.0")."""
    name = name.strip().rstrip(".")
    low = name.lower()
    if low in ("public domain", "public-domain", "pd"):
        return "public-domain"
    aliases = {"fdl": "GFDL",
               "gnu-fdl": "GFDL", "gnu fdl": "GFDL", "cc0": "CC0-1.0"}
    if low in aliases:
        return aliases[low]
    m = re.fullmatch(r"(L?GPL)v?-?(\d)(?:\.0)?(\+?)", name, re.I)
    if m:
        return f"{m.group(1).upper()}-{m.group(2)}{m.group(3)}"
    return re.sub(r"\s+", "-", name.replace("CC BY", "CC-BY"))


def parse_attribution_readme(text: str, directory: str) -> list[tuple[list[str], str]]:
    """``(file patterns, licence)`` per paragraph of a gcompris resource ``README``.

    gcompris keeps, next to its images, a README of paragraphs with ``Copyright:``,
    ``License:``, ``Source:`` and ``Files:`` (file names on the following lines or
    after the key). They are the upstream record for the converted WebP files and more
    precise than the Debian copyright file, which still names the old JPEGs.
    """
    stanzas: list[tuple[list[str], str]] = []
    for para in re.split(r"\n\s*\n", text):
        licence = None
        files: list[str] = []
        for line in para.splitlines():
            m = re.match(r"^\s*([A-Za-z-]+)\s*:\s*(.*)$", line)
            if m and not m.group(2).startswith("//"):
                key, value = m.group(1).lower(), m.group(2).strip()
                if key in ("license", "licence") and licence is None:
                    licence = value
                elif key == "files" and value:
                    files.extend(value.split())
            elif line.strip() and "://" not in line:
                files.extend(line.split())
        if licence and files:
            pats = [posixpath.normpath(posixpath.join(directory, f)) for f in files]
            stanzas.append((pats, normalise_licence(licence)))
    return stanzas
