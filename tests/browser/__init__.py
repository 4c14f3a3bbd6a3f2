"""Browser tests: the tablet UI driven in Chromium (Playwright) and WebKit (Selenium)."""
