"""Writing files so that a reader never sees half of one, and a command's outputs appear whole or not at all."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.errors import HarnessError

_STAGED, _REPLACED = "partial", "old"


def write_json(path: str | Path, data: Any, **dumps: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (a temporary file in the same
    folder, then a rename); ``dumps`` go to ``json.dumps`` (``default=str``, ...)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, **dumps) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


@contextmanager
def staged(*targets: str | Path) -> Iterator[list[Path]]:
    """Write new versions of ``targets`` (files or folders) aside, then put them in place together.

    Yields one path per target, a hidden name beside it (so the rename stays on one file
    system), for the caller to write: a file, or a folder it creates. When the block ends
    normally each staged path replaces its target (a folder as a whole, so files the new
    output does not hold go with the old one; a target left unwritten is removed), with
    Ctrl-C and SIGTERM held back until every target is in place. When the block raises,
    Ctrl-C included, the staged paths are deleted and the targets are as they were.
    What a killed process leaves behind is cleared by the next call for the same target.
    """
    paths = [Path(t) for t in targets]
    created = [_make_parents(path.parent) for path in paths]
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    for path in paths:
        _clear_leftovers(path)
    staging = [_sibling(path, _STAGED, token) for path in paths]
    try:
        yield staging
    except BaseException:
        for path in staging:
            _remove(path)
        for folder in reversed([f for made in created for f in made]):
            _remove_if_empty(folder)
        raise
    with signals_held():
        replaced = []
        for new, target in zip(staging, paths):
            if target.is_dir() or (target.exists() and new.is_dir()) or not new.exists():
                if target.exists() or target.is_symlink():
                    old = _sibling(target, _REPLACED, token)
                    os.replace(target, old)
                    replaced.append(old)
            if new.exists():
                os.replace(new, target)
        for old in replaced:
            _remove(old)


def check_writable(path: str | Path, folder: bool, option: str) -> Path:
    """Fail now, not after the work, when ``path`` cannot be written: ``folder`` says whether
    the command writes a folder there or a file. The nearest existing ancestor must be a
    folder in which a file can be created (tried for real: permission bits do not bind root)."""
    target = Path(path)
    if target.exists():
        if folder and not target.is_dir():
            raise HarnessError(f"{option} {target}: is a file, not a folder")
        if not folder and target.is_dir():
            raise HarnessError(f"{option} {target}: is a folder, not a file")
    ancestor = target if folder and target.is_dir() else target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise HarnessError(f"{option} {target}: {ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise HarnessError(f"{option} {target}: cannot write in {ancestor} ({exc.strerror or exc})") from None
    return target


def _sibling(path: Path, role: str, token: str) -> Path:
    return path.with_name(f".{path.name}.{role}-{token}")


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; returns those created, outermost first."""
    missing = [f for f in [folder, *folder.parents] if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _clear_leftovers(target: Path) -> None:
    """Remove what a killed process left beside ``target``: its staged new version, or (had it
    died mid-swap) the old version it had moved aside, which goes back where the target is gone."""
    for role in (_REPLACED, _STAGED):
        # the staged path itself, or a temporary file of a writer that was writing it
        pattern = re.compile(rf"\.+{re.escape(target.name)}\.{role}-(\d+)-[0-9a-f]+(\..*)?")
        for leftover in target.parent.glob(f".*{glob.escape(target.name)}.{role}-*"):
            match = pattern.fullmatch(leftover.name)
            if match is None or _alive(int(match.group(1))):
                continue
            if role == _REPLACED and match.group(2) is None and not (target.exists() or target.is_symlink()):
                os.replace(leftover, target)
            else:
                _remove(leftover)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process stages one target at a time: what it left is from an earlier call
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs, then deliver them (main thread only:
    Python runs signal handlers there, so other threads cannot be interrupted by them anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, frame: caught.append(number)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)
