"""Is there a screen to open a window on? Asked before Qt, which aborts the process without one.

Without an X server (over SSH, in a container) Qt's xcb plugin prints "Reinstalling the
application may fix this problem" and aborts with SIGABRT; nothing after it can catch that.
So the viewer looks first: a Qt platform chosen explicitly (offscreen, wayland, vnc) is trusted;
otherwise $DISPLAY must name an X server that accepts a connection.
"""
from __future__ import annotations

import os
import re
import socket
import sys

NO_DISPLAY_HINT = ("for a picture of the window use `view --screenshot FILE.png` (drawn "
                   "offscreen), or the `map`, `read` and `surgery` commands")


def _x_server_answers(display: str, timeout: float = 1.0) -> bool:
    """True when something accepts a connection where `display` ([host]:N[.S]) lives."""
    found = re.fullmatch(r"(?P<host>[^:]*):(?P<number>\d+)(\.\d+)?", display)
    if not found:
        return False
    host, number = found.group("host"), int(found.group("number"))
    if host in ("", "unix"):
        addresses = [(socket.AF_UNIX, f"/tmp/.X11-unix/X{number}"),
                     (socket.AF_UNIX, f"\0/tmp/.X11-unix/X{number}")]
    else:
        addresses = [(socket.AF_INET, (host, 6000 + number))]
    for family, address in addresses:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(address)
                return True
        except OSError:
            continue
    return False


def display_problem(env: dict[str, str] | None = None,
                    system: str = sys.platform) -> str | None:
    """Why no window can open here (one sentence), or None when Qt should manage."""
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "")
    if not system.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None                      # macOS and Windows have their own window systems
    if platform and not platform.startswith("xcb"):
        return None
    display = env.get("DISPLAY", "")
    if not display:
        return "no display found (DISPLAY is not set)"
    if not _x_server_answers(display):
        return f"no display found (no X server answers at DISPLAY={display})"
    return None
