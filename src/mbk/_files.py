"""Output files written whole or not at all (``mbk demo``'s outputs, model files)."""

import os
import threading


class OutputExists(Exception):
    """An output file exists and overwriting was not asked for."""


def write_atomically(path, write, force):
    """write(file) to a temporary name beside ``path``, then rename it there: never a
    half-written file, and an existing one only with ``force``.

    The temporary file is in the same folder, so the rename is atomic; it is flushed to disk
    first, so a crash right after the rename cannot leave an empty file either. When
    ``write`` raises, the temporary file is removed and ``path`` is as it was.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise OutputExists(path)
    # (the thread too: two threads of one process may write the same path)
    partial = f"{path}.partial-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(partial, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
