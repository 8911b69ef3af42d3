"""Writing files only their owner may read, whole or not at all.

A broker reloading its password file on SIGHUP, or an operator copying a secrets file, must never see half
a file, so each file is written beside its target and renamed over it. The temporary file is created with
mode 0600, so the secret is never readable by others, not even for a moment. A file that exists keeps its
owner and group: after one ``chown mosquitto passwd acl`` the broker can still read them after every re-run.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # the umask may have taken bits away, never added; this states the mode
        if path.exists():
            st = path.stat()
            if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
