"""Headless Debian Chromium driven by Selenium, for the web console's tests and benchmark.

Debian packages: chromium, chromium-driver, python3-selenium (run with /usr/bin/python3).
`Browser(base_url)` starts one browser with a throw-away profile and keeps its console log, so
a test can fail on any SEVERE entry (a script error, a refused Content-Security-Policy, a
request that failed). Every wait is explicit and bounded.
"""

import os
import shutil
import tempfile
import time
import unittest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 20  # seconds any one expected change may take
LAPTOP = (1366, 900)
PHONE = (390, 844)


def skip_unless_available():
    """unittest.SkipTest unless Chromium, its driver and Selenium are installed."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise unittest.SkipTest("%s is not installed (Debian: chromium, chromium-driver)" % path)
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise unittest.SkipTest("python3-selenium is not installed")


class Browser:
    def __init__(self, base_url, size=LAPTOP):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url = base_url.rstrip("/")
        self.profile = tempfile.mkdtemp(prefix="warren-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--user-data-dir=" + self.profile,
                    "--window-size=%d,%d" % size, "--disable-gpu", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync", "--hide-scrollbars", "--lang=en-GB"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.log = []  # every console entry seen so far

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # ---- pages -------------------------------------------------------------------------------

    def open(self, route=""):
        """Loads the console at #/route (a full load: modules, session from sessionStorage)."""
        self.driver.get("%s/#/%s" % (self.base_url, route))

    def go(self, route):
        """Moves to #/route inside the running page, as a click on a link does."""
        self.driver.execute_script("location.hash = arguments[0]", "#/" + route)

    def login(self, user, password, expect_success=True):
        from selenium.webdriver.common.by import By

        self.driver.get(self.base_url + "/")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(self.base_url + "/")
        self.wait_visible("#login-user")
        # The first load above ran the console with the previous test's session (perhaps a user
        # since deleted), whose polls may have ended in 401s: they belong to that test, not this.
        self.console_entries()
        self.driver.find_element(By.ID, "login-user").send_keys(user)
        self.driver.find_element(By.ID, "login-password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        if expect_success:
            self.wait_visible("#top")
            self.wait(lambda d: d.execute_script("return document.querySelector('main').dataset.page") != "",
                      "no page after logging in")

    def logout(self):
        self.click("#logout")
        self.wait_visible("#login-user")

    # ---- waits ---------------------------------------------------------------------------------

    def wait(self, condition, message, timeout=WAIT):
        """Waits until condition(driver) is truthy; returns it."""
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition, message)

    def find(self, css):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_visible(self, css, timeout=WAIT):
        return self.wait(lambda d: next((e for e in self.find(css) if e.is_displayed()), None),
                         "%s never became visible" % css, timeout)

    def wait_text(self, css, text, timeout=WAIT):
        """Waits until an element matching css holds text; returns the element."""
        def found(d):
            for e in self.find(css):
                try:
                    if text in e.text:
                        return e
                except Exception:  # replaced while being read: look again
                    return None
            return None
        return self.wait(found, "no %s holding %r" % (css, text), timeout)

    def wait_table(self, table, timeout=WAIT):
        """Waits for the paged table `table` (data-table) to be drawn; returns its rows' texts,
        read again if the page redrew the table while they were read (it refreshes every few
        seconds)."""
        from selenium.common.exceptions import StaleElementReferenceException

        css = '[data-table="%s"][data-state="ready"]' % table

        def rows(d):
            try:
                if not any(e.is_displayed() for e in self.find(css)):
                    return None
                return ([r.text for r in self.find(css + " tbody tr")],)  # a tuple: [] is an answer too
            except StaleElementReferenceException:
                return None
        return self.wait(rows, "%s never drawn" % css, timeout)[0]

    def click(self, css):
        """Clicks the first visible element matching css, again if the page redrew it meanwhile
        (tables are redrawn every few seconds)."""
        from selenium.common.exceptions import StaleElementReferenceException

        def clicked(d):
            for e in self.find(css):
                try:
                    if e.is_displayed():
                        e.click()
                        return e
                except StaleElementReferenceException:
                    return None
            return None
        return self.wait(clicked, "could not click %s" % css)

    def section(self, title):
        """Opens the collapsible section titled `title`; returns it."""
        from selenium.webdriver.common.by import By

        xpath = "//details[summary[normalize-space()='%s']]" % title
        details = self.wait(lambda d: d.find_element(By.XPATH, xpath), "no section %r" % title)
        if not details.get_attribute("open"):
            details.find_element(By.TAG_NAME, "summary").click()
        return details

    def script(self, source, *args):
        return self.driver.execute_script(source, *args)

    def async_script(self, source, *args):
        return self.driver.execute_async_script(source, *args)

    # ---- what the page said ----------------------------------------------------------------------

    def console_entries(self):
        """Console entries since the last call (they are kept in self.log too)."""
        entries = self.driver.get_log("browser")
        self.log.extend(entries)
        return entries

    def severe(self, allowed=()):
        """SEVERE console entries since the last call, except those containing an allowed text."""
        return [e["message"] for e in self.console_entries()
                if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]

    def screenshot(self, directory, name):
        os.makedirs(directory, exist_ok=True)
        time.sleep(0.1)  # let the last frame paint
        self.driver.save_screenshot(os.path.join(directory, name + ".png"))
