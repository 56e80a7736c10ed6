"""Whether a process is alive, for the files and leases named after the process that holds them."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user).

    Parameters
    ----------
    pid : int
        A process id (> 0).

    Returns
    -------
    bool
        False when no such process exists (signal 0 finds none, POSIX ``kill(2)``).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
