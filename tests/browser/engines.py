"""Two browser engines behind one small interface, so each UI test is written once.

Chromium is Debian's own binary driven by Playwright (never Playwright's download);
WebKit is WebKitGTK's MiniBrowser driven by Selenium through WebKitWebDriver, on a
virtual X display (its --headless mode hangs). Scripts run in the page as the body of an
async function whose arguments are `args`, so both engines await promises alike.
"""

from __future__ import annotations

import abc
import os
import time
import warnings
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
XVFB = "/usr/bin/Xvfb"
ENGINES = ("chromium", "webkit")
TABLET = (1180, 820)          # an iPad Air held sideways, in CSS pixels
TABLET_TZ = "Europe/Berlin"   # not UTC, which the box stores: times must be shown local
STEP_TIMEOUT_S = 20.0         # one click or one page load
POLL_S = 0.05


def missing_binaries(engine: str) -> list[str]:
    """What this machine lacks to run `engine` (empty: it can run)."""
    needed = [CHROMIUM] if engine == "chromium" else [MINIBROWSER, WEBKIT_DRIVER, XVFB]
    return [path for path in needed if not os.access(path, os.X_OK)]


class PageScriptError(Exception):
    """A script run in the page threw, or the page went away under it."""


class Engine(abc.ABC):
    """One browser tab on the box's UI."""

    name: str

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def absolute(self, path_or_url: str) -> str:
        """A path on the box as a full URL."""
        return path_or_url if "://" in path_or_url else self.base_url + path_or_url

    @abc.abstractmethod
    def goto(self, path_or_url: str) -> None:
        """Load a page and wait for its load event."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The address now shown."""

    @abc.abstractmethod
    def fill(self, selector: str, text: str) -> None:
        """Replace the text of an input or textarea by typing."""

    @abc.abstractmethod
    def click(self, selector: str) -> None:
        """Click an element once it is visible and enabled."""

    @abc.abstractmethod
    def select(self, selector: str, label: str) -> None:
        """Choose the option of a <select> shown as `label`."""

    @abc.abstractmethod
    def set_file(self, selector: str, path: Path) -> None:
        """Put a file into an <input type=file>."""

    @abc.abstractmethod
    def press(self, key: str) -> None:
        """Press a key in the focused element ("." "," "i" "ArrowRight" ...)."""

    @abc.abstractmethod
    def _run(self, body: str, args: list[Any]) -> Any:
        ...

    @abc.abstractmethod
    def screenshot(self, path: Path) -> None:
        """Save a PNG of the whole page."""

    @abc.abstractmethod
    def cookies(self) -> dict[str, str]:
        """The session's cookies by name (to fetch media as the logged-in guider)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the tab and its browser state."""

    def log(self) -> list[str]:
        """What the page said on its console and any uncaught errors (where known)."""
        return []

    def page_errors(self) -> list[str]:
        """Uncaught script errors seen so far (where the engine reports them)."""
        return []

    def eval_js(self, body: str, *args: Any) -> Any:
        """Run `body` as an async function in the page (arguments in `args`); its value."""
        return self._run(body, list(args))

    def wait_for(self, js_condition: str, timeout: float = STEP_TIMEOUT_S, *args: Any,
                 what: str = "") -> Any:
        """Poll a JS expression (it may `await`) until truthy; that value. A page that is
        navigating counts as not yet."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = self._run(f"return ({js_condition});", list(args))
            except PageScriptError as e:
                last = f"script error: {e}"
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out after {timeout:.0f} s waiting for "
                                     f"{what or js_condition} (last value: {last!r:.300})")
            time.sleep(POLL_S)


class ChromiumEngine(Engine):
    """A tab of Debian's Chromium, driven by Playwright."""

    name = "chromium"

    def __init__(self, browser: Any, base_url: str) -> None:
        from playwright.sync_api import Error
        super().__init__(base_url)
        self._error = Error
        self._context = browser.new_context(
            viewport={"width": TABLET[0], "height": TABLET[1]}, base_url=self.base_url,
            timezone_id=TABLET_TZ)
        self._context.set_default_timeout(STEP_TIMEOUT_S * 1000)
        self.page = self._context.new_page()
        self._log: list[str] = []
        self._errors: list[str] = []
        self.page.on("console", lambda m: self._log.append(f"console.{m.type}: {m.text}"))
        self.page.on("pageerror", self._on_error)
        self.page.on("response", self._on_response)

    def _on_error(self, error: Any) -> None:
        self._errors.append(str(error))
        self._log.append(f"uncaught: {error}")

    def _on_response(self, response: Any) -> None:
        if response.status >= 400:
            self._log.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def goto(self, path_or_url: str) -> None:
        self.page.goto(self.absolute(path_or_url))

    @property
    def url(self) -> str:
        return str(self.page.url)

    def fill(self, selector: str, text: str) -> None:
        self.page.fill(selector, text)

    def click(self, selector: str) -> None:
        self.page.click(selector)

    def select(self, selector: str, label: str) -> None:
        self.page.select_option(selector, label=label)

    def set_file(self, selector: str, path: Path) -> None:
        self.page.set_input_files(selector, str(path))

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def _run(self, body: str, args: list[Any]) -> Any:
        try:
            return self.page.evaluate(f"async (args) => {{ {body}\n}}", args)
        except self._error as e:
            raise PageScriptError(str(e).splitlines()[0]) from None

    def screenshot(self, path: Path) -> None:
        # From the top: a page scrolled down draws its sticky header mid-page in the shot.
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self._context.cookies()}

    def log(self) -> list[str]:
        return list(self._log)

    def page_errors(self) -> list[str]:
        return list(self._errors)

    def close(self) -> None:
        self._context.close()


_WRAP_ASYNC = """
const done = arguments[arguments.length - 1];
const args = Array.prototype.slice.call(arguments, 0, arguments.length - 1);
(async (args) => { %s
})(args).then((value) => done({ok: value === undefined ? null : value}),
              (e) => done({error: String((e && e.stack) || e)}));
"""


class WebKitEngine(Engine):
    """A WebKitGTK MiniBrowser window on a virtual display, driven by Selenium."""

    name = "webkit"

    def __init__(self, display: str, base_url: str) -> None:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        super().__init__(base_url)
        self._webdriver_error = WebDriverException
        options = Options()
        options.binary_location = MINIBROWSER
        options.add_argument("--automation")
        env = {**os.environ, "DISPLAY": display, "TZ": TABLET_TZ}
        with warnings.catch_warnings():
            # Selenium's own get_remote_connection() passes remote_server_addr to the
            # connection it makes for WebKitGTK, then warns that doing so is deprecated.
            warnings.filterwarnings("ignore", "setting remote_server_addr in RemoteConnection",
                                    DeprecationWarning)
            self.driver = webdriver.WebKitGTK(options=options,
                                              service=Service(WEBKIT_DRIVER, env=env))
        self.driver.set_page_load_timeout(STEP_TIMEOUT_S * 2)
        self.driver.set_script_timeout(STEP_TIMEOUT_S * 2)
        self._fit_viewport(*TABLET)

    def _fit_viewport(self, width: int, height: int) -> None:
        # The window's size includes whatever frame MiniBrowser draws: size the page itself.
        self.driver.set_window_size(width, height)
        inner = self.eval_js("return [window.innerWidth, window.innerHeight]")
        self.driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])

    def goto(self, path_or_url: str) -> None:
        self.driver.get(self.absolute(path_or_url))

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def _element(self, selector: str, *, enabled: bool = True) -> Any:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            found = self.driver.find_elements("css selector", selector)
            visible = [e for e in found if e.is_displayed() and (not enabled or e.is_enabled())]
            if visible:
                return visible[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"webkit: no visible, enabled {selector!r} "
                                     f"({len(found)} in the page)")
            time.sleep(POLL_S)

    def _retrying(self, selector: str, action: Any, *, enabled: bool = True) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            try:
                action(self._element(selector, enabled=enabled))
                return
            except self._webdriver_error:
                # Stale, covered by a passing message, or not yet interactable: again.
                if time.monotonic() > deadline:
                    raise
                time.sleep(POLL_S)

    def fill(self, selector: str, text: str) -> None:
        def type_in(element: Any) -> None:
            element.clear()
            element.send_keys(text)
        self._retrying(selector, type_in)

    def click(self, selector: str) -> None:
        def centre_and_click(element: Any) -> None:
            # WebDriver scrolls an element only just into view, where the sticky header
            # can cover it ("click intercepted"): bring it to the middle first, as a finger
            # would only tap what it sees.
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                                       element)
            element.click()
        self._retrying(selector, centre_and_click)

    def select(self, selector: str, label: str) -> None:
        from selenium.webdriver.support.select import Select
        self._retrying(selector, lambda element: Select(element).select_by_visible_text(label))

    def set_file(self, selector: str, path: Path) -> None:
        element = self.driver.find_element("css selector", selector)
        element.send_keys(str(path))

    def press(self, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys
        named = {"ArrowRight": Keys.ARROW_RIGHT, "ArrowLeft": Keys.ARROW_LEFT,
                 "Space": Keys.SPACE, "Enter": Keys.ENTER}
        ActionChains(self.driver).send_keys(named.get(key, key)).perform()

    def _run(self, body: str, args: list[Any]) -> Any:
        try:
            result = self.driver.execute_async_script(_WRAP_ASYNC % body, *args)
        except self._webdriver_error as e:
            raise PageScriptError((e.msg or str(e)).splitlines()[0]) from None
        if not isinstance(result, dict):
            raise PageScriptError(f"the page answered {result!r:.200}")
        if "error" in result:
            raise PageScriptError(result["error"])
        return result.get("ok")

    def screenshot(self, path: Path) -> None:
        # Selenium shows only the viewport: make the window as tall as the page for the shot.
        height = int(self.eval_js("return document.documentElement.scrollHeight"))
        self._fit_viewport(TABLET[0], max(TABLET[1], height))
        self.eval_js("await new Promise((r) => requestAnimationFrame(() => "
                     "requestAnimationFrame(r)))")
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self._fit_viewport(*TABLET)

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.driver.get_cookies()}

    def close(self) -> None:
        self.driver.quit()


def open_engine(name: str, *, base_url: str, chromium: Any = None,
                display: str | None = None) -> Engine:
    """A fresh tab (no cookies) of engine `name`."""
    if name == "chromium":
        return ChromiumEngine(chromium, base_url)
    assert display is not None, "WebKit needs a virtual display"
    return WebKitEngine(display, base_url)
