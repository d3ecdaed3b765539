"""Headless Chromium, driven over its DevTools protocol (a websocket): open a page, run JavaScript, move the mouse,
take screenshots, and collect every JavaScript error and every network request the page makes.

Only needs the ``websocket-client`` package (the dev extra) and Debian's ``chromium``; no Selenium, no driver.
Used by tests/test_explain_browser.py and scripts/explain_screenshots.py.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# Flags that work on a closed network: without the background-networking ones Chromium's own connections
# (updates, sync, field trials) are refused and slow everything down.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0"]


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page. ``with Chromium() as b: b.open(path); b.evaluate("1 + 1")``"""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 1000, timeout: float = 60):
        import websocket  # the dev extra's websocket-client

        self.binary = binary or find_chromium()
        if self.binary is None:
            raise RuntimeError("no chromium on PATH (apt-get install chromium)")
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="minillm-chromium-"))
        self.proc = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.events: list[dict] = []
        self._id = 0
        try:
            port = self._port()
            target = self._page_target(port)
            # suppress_origin: Chromium refuses websocket clients that send an Origin it was not told to allow
            self.ws = websocket.create_connection(target, timeout=timeout, suppress_origin=True)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _port(self) -> int:
        """Chromium writes the port it chose into DevToolsActivePort in its profile folder."""
        file, end = self.profile / "DevToolsActivePort", time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.proc.returncode}")
            if file.is_file() and file.read_text().strip():
                return int(file.read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    @staticmethod
    def _page_target(port: int) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        for _ in range(100):
            targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.05)
        raise RuntimeError("chromium has no page")

    def send(self, method: str, **params) -> dict:
        """One DevTools command; events that arrive meanwhile are kept in ``self.events``."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression: str):
        """Run JavaScript in the page and return its value (JSON-able); a thrown exception raises here."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JavaScript error: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def open(self, path: Path, ready: str = "document.body && document.body.dataset.ready === '1'") -> None:
        """Load a local file and wait until ``ready`` is true (or an error: see ``errors``)."""
        self.send("Page.navigate", url=Path(path).resolve().as_uri())
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.evaluate(f"(() => {{ try {{ return !!({ready}); }} catch (e) {{ return false; }} }})()") or self.errors():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{path}: the page did not become ready")

    def errors(self) -> list[str]:
        """Every uncaught JavaScript exception, console.error and error log entry so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        """The URL of every request the page made (the page itself included)."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def _centre(self, selector: str, at: tuple[float, float] = (0.5, 0.5)) -> tuple[float, float]:
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: "center", inline: "center"}});
            const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }})()""")
        if box is None:
            raise LookupError(f"no element matches {selector!r}")
        return box[0] + at[0] * box[2], box[1] + at[1] * box[3]

    def hover(self, selector: str, at: tuple[float, float] = (0.5, 0.5)) -> None:
        """Move the mouse onto the element (``at``: where, as fractions of its width and height; the centre by
        default). A real mouse event: mouseenter and mousemove fire."""
        x, y = self._centre(selector, at)
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def click(self, selector: str) -> None:
        x, y = self._centre(selector)
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def choose(self, selector: str, value) -> None:
        """Set a <select> or <input type=range> and fire its change and input events, as a user's choice does."""
        self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.value = {json.dumps(str(value))};
            e.dispatchEvent(new Event("input", {{bubbles: true}})); e.dispatchEvent(new Event("change", {{bubbles: true}}));
            }})()""")

    def screenshot(self, path: Path, selector: str | None = None) -> Path:
        """A PNG of the element (or the whole page), written to ``path``."""
        if selector:
            self.evaluate(f"document.querySelector({json.dumps(selector)}).scrollIntoView()")
            box = self.evaluate(f"""(() => {{ const r = document.querySelector({json.dumps(selector)})
                .getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, r.height]; }})()""")
            clip = dict(x=box[0], y=box[1], width=box[2], height=box[3], scale=1)
            shot = self.send("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        else:
            shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
