"""Safe extraction of tar (gz, bz2, xz) and zip archives.

Every member is checked before anything is written: no absolute paths, no ``..`` that
leaves the target directory, no links pointing outside it, no device files. A refused
archive writes nothing. Extracting the same archive again rewrites the same files.
"""

from __future__ import annotations

import os
import tarfile
import zipfile

ARCHIVE_FORMATS = ("tar", "zip")


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target directory."""


def _inside(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def _check_member(archive: str, target: str, name: str, link: str | None = None) -> None:
    where = os.path.join(target, name)
    if os.path.isabs(name) or not _inside(target, where):
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {name!r} would be written outside {target}"
        )
    if link is not None:
        resolved = link if os.path.isabs(link) else os.path.join(os.path.dirname(where), link)
        if os.path.isabs(link) or not _inside(target, resolved):
            raise UnsafeArchiveError(
                f"refusing to extract {archive}: member {name!r} links to {link!r}, outside "
                f"{target}"
            )


def _extract_tar(path: str, target: str) -> None:
    with tarfile.open(path) as archive:
        members = archive.getmembers()
        for member in members:
            if member.isdev():
                raise UnsafeArchiveError(
                    f"refusing to extract {path}: member {member.name!r} is a device file"
                )
            if member.issym():
                _check_member(path, target, member.name, member.linkname)
            elif member.islnk():
                # Hard link names are relative to the archive root, not the member.
                _check_member(path, target, member.name)
                _check_member(path, target, member.linkname)
            else:
                _check_member(path, target, member.name)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(target, members=members, filter="data")
        else:  # Python < 3.10.12 / 3.11.4: the checks above are all there is
            archive.extractall(target, members=members)


def _extract_zip(path: str, target: str) -> None:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for name in names:
            _check_member(path, target, name)
        archive.extractall(target)


def extract_archive(path: str, target: str, archive_format: str | list | None = "auto") -> bool:
    """Extracts a tar or zip archive into ``target`` if it is one of ``archive_format``.

    Args:
        path: the archive.
        target: directory to extract into (created if needed).
        archive_format: ``'auto'`` (tar or zip), ``'tar'``, ``'zip'``, a list of them, or
            ``None`` for no extraction.

    Returns:
        True if the file was an archive of an accepted format and was extracted.

    Raises:
        UnsafeArchiveError: for members that would escape ``target`` (nothing written).
        ValueError: for an unknown format name.
    """
    if archive_format is None:
        return False
    formats = list(ARCHIVE_FORMATS) if archive_format == "auto" else archive_format
    if isinstance(formats, str):
        formats = [formats]
    unknown = [f for f in formats if f not in ARCHIVE_FORMATS]
    if unknown:
        raise ValueError(f"archive_format must be 'auto', 'tar' or 'zip'. Received: {unknown}")
    os.makedirs(target, exist_ok=True)
    for fmt in formats:
        if fmt == "tar" and tarfile.is_tarfile(path):
            _extract_tar(path, target)
            return True
        if fmt == "zip" and zipfile.is_zipfile(path):
            _extract_zip(path, target)
            return True
    return False
