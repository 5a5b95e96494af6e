"""A headless Chromium driven over the DevTools protocol, with the standard library only.

`--remote-debugging-pipe`: Chromium reads commands on its fd 3 and writes answers on fd 4, as
NUL-separated JSON, so there is no port to pick and no websocket client to install. Enough of the
protocol for the UI tests: open a page, read its text, run a line of JavaScript, take a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# SWEEPS_CHROMIUM: another build (or, to see the tests refuse to skip in CI, a path that does not exist).
CHROMIUM = os.environ.get("SWEEPS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


class BrowserError(RuntimeError):
    pass


def _high(fd: int) -> int:
    """The same pipe end on a descriptor above 4, so moving it to 3 or 4 in the child clobbers nothing."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    def __init__(self, profile: Path, width: int = 1400, height: int = 900) -> None:
        commands_read, self._commands = map(_high, os.pipe())
        self._answers, answers_write = map(_high, os.pipe())

        def _move_pipes() -> None:  # in the child, before exec
            os.dup2(commands_read, 3)
            os.dup2(answers_write, 4)

        self.log = profile.parent / f"{profile.name}-chromium.log"
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=_move_pipes,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            start_new_session=True,
        )
        os.close(commands_read)
        os.close(answers_write)
        self._next_id, self._buffer = 0, b""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            page=True,
        )
        self.send("Page.enable", page=True)

    # ------------------------------------------------------------ protocol

    def send(
        self, method: str, params: dict[str, Any] | None = None, page: bool = False, timeout_s: float = 60
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            for answer in self._read(deadline):
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise BrowserError(f"{method}: {answer['error']}")
                    return answer.get("result", {})

    def _read(self, deadline: float) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                raise BrowserError(f"Chromium did not answer (exit {self.process.poll()}): {self.log.read_text()[-2000:]}")
            ready, _, _ = select.select([self._answers], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed its pipe: {self.log.read_text()[-2000:]}")
                self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    # ------------------------------------------------------------ pages

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, page=True)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, page=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, check: Callable[[str], bool], timeout_s: float = 60, what: str = "") -> str:
        """The page's visible text once `check` holds for it; BrowserError with the text otherwise."""
        deadline, text = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline:
            text = self.text()
            if check(text):
                return text
            time.sleep(0.5)
        raise BrowserError(f"not on the page after {timeout_s:.0f} s: {what}\n--- page text ---\n{text[:3000]}")

    def wait_for_js(self, expression: str, timeout_s: float = 60, what: str = "") -> Any:
        deadline, value = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        raise BrowserError(
            f"{what or expression[:200]}: still {value!r} after {timeout_s:.0f} s\n--- page text ---\n{self.text()[:3000]}"
        )

    def screenshot(self, path: Path) -> bytes:
        time.sleep(0.5)  # let the last frame paint
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, page=True)["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=5)
        except BrowserError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)  # the group this object started
            self.process.wait(timeout=10)
        for fd in (self._commands, self._answers):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
