#!/usr/bin/python3
"""How fast is the web console's queue list with 10,000 queues? (issue 11)

Starts a release Warren from --build on free ports, declares Q queues (10,000 by default) over
AMQP with pika and puts messages in some of them (queue i gets i % 7 messages for one queue in
--loaded, so that a sort by depth reorders the list), waits until the API lists every queue,
then drives headless Chromium (tests/integration/console_browser.py) and measures, inside the
page with performance.now() up to the first frame painted after the table is drawn:
  1. cold: loading http://host/#/queues in a fresh tab (HTML, Chart.js, the modules, the login
     kept in sessionStorage, the first page of 100 queues);
  2. open: moving to the queue list from the overview (one API request and the drawing);
  3. sort: a click on the "Ready" header (sorted by the broker, high to low) and on "Name";
  4. the API request alone, from Python (the same URL the page asks for), so that the broker's
     share of the figures shows.
Each is repeated --rounds times: median, minimum and maximum in milliseconds. A benchmark that
prints figures, never a test with a threshold.

usage: clients/bench/console/run.py [--queues 10000] [--rounds 7] [--build build] [--page-size 100]
"""
import argparse
import base64
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import console_browser  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from compare_brokers import spare_port as free_port, wait_for_port  # noqa: E402

COLUMNS = ("name,vhost,type,state,durable,auto_delete,exclusive,arguments,policy,operator_policy,consumers,messages,"
           "messages_ready,messages_unacknowledged,oldest_message_age_ms,message_stats.publish_details.rate,"
           "message_stats.deliver_get_details.rate,message_stats.ack_details.rate")

# Waits in the page until the queue table is drawn (and, when given, its first row differs from
# `before`), then for the next painted frame; returns [ms since `start` (performance.now()), ms
# the last /api/queues request took as the browser saw it (Resource Timing: request sent to
# last byte received)].
WAIT_DRAWN = """
function waitDrawn(start, before, done) {
  const check = () => {
    const table = document.querySelector('[data-table="queues"][data-state="ready"]');
    const first = table && table.querySelector('tbody tr');
    if (first && first.textContent !== before) requestAnimationFrame(() => {
      const total = performance.now() - start;
      const api = performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/queues?')).pop();
      performance.clearResourceTimings();
      done([total, api ? api.responseEnd - api.startTime : 0]);
    });
    else setTimeout(check, 1);
  };
  check();
}
"""


def log(message):
    print("[console] %s" % message, file=sys.stderr, flush=True)


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    token = base64.b64encode(b"guest:guest").decode()
    try:
        conn.request("GET", path, headers={"Authorization": "Basic " + token})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def summary(values):
    return "%8.1f %8.1f %8.1f" % (statistics.median(values), min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description="the web console's queue list with many queues")
    parser.add_argument("--queues", type=int, default=10000)
    parser.add_argument("--loaded", type=int, default=10, help="one queue in N gets messages")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    try:
        console_browser.skip_unless_available()
    except Exception as e:  # unittest.SkipTest
        raise SystemExit(str(e))
    import pika

    home = tempfile.mkdtemp(prefix="console-bench-")
    amqp_port, http_port = free_port(), free_port()
    broker = subprocess.Popen([os.path.join(args.build, "warren"), "--bind", "127.0.0.1", "--port", str(amqp_port),
                               "--data-dir", home, "--management_port", str(http_port), "--prometheus_port", "0",
                               "--log-level", "warning"])
    browser = None
    try:
        if not wait_for_port(amqp_port, broker, 20):
            raise SystemExit("warren did not start")
        log("declaring %d queues" % args.queues)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp_port))
        ch = conn.channel()
        for i in range(args.queues):
            name = "bench-%05d" % i
            ch.queue_declare(name)
            if i % args.loaded == 0:
                for _ in range(i % 7):
                    ch.basic_publish("", name, b"x")
        conn.close()
        deadline = time.monotonic() + 60
        while True:
            status, body = http_get(http_port, "/api/queues?page=1&page_size=1&columns=name")
            if status == 200 and b'"total_count":%d' % args.queues in body:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the API did not list %d queues" % args.queues)
            time.sleep(0.2)

        api = {"name": [], "ready": []}
        for _ in range(args.rounds):
            for label, sort in (("name", "sort=name"), ("ready", "sort=messages_ready&sort_reverse=true")):
                started = time.perf_counter()
                status, _ = http_get(http_port, "/api/queues?page=1&page_size=%d&%s&columns=%s" % (args.page_size, sort, COLUMNS))
                api[label].append((time.perf_counter() - started) * 1000)
                assert status == 200

        log("measuring in headless Chromium")
        browser = console_browser.Browser("http://127.0.0.1:%d" % http_port)
        browser.login("guest", "guest")
        browser.script("sessionStorage.setItem('warren.table.queues', JSON.stringify({pageSize: %d, sort: 'name'}))"
                       % args.page_size)
        cold, opened, by_ready, by_name = [], [], [], []
        browser.script("performance.setResourceTimingBufferSize(10000)")
        for _ in range(args.rounds):
            # cold: a new document; performance.now() counts from its navigation start
            browser.driver.get("about:blank")
            browser.driver.get("http://127.0.0.1:%d/#/queues" % http_port)
            cold.append(browser.async_script(WAIT_DRAWN + "waitDrawn(0, null, arguments[arguments.length - 1]);"))
            # open: from the overview to the queue list
            browser.go("")
            browser.wait_visible("[data-tile=queues]")
            opened.append(browser.async_script(WAIT_DRAWN + """
                const done = arguments[arguments.length - 1];
                const start = performance.now();
                location.hash = '#/queues';
                waitDrawn(start, null, done);"""))
            for sort, into in (("messages_ready", by_ready), ("name", by_name)):
                into.append(browser.async_script(WAIT_DRAWN + """
                    const [sort, done] = arguments;
                    const before = document.querySelector('[data-table="queues"] tbody tr').textContent;
                    const start = performance.now();
                    document.querySelector('button[data-sort="' + sort + '"]').click();
                    waitDrawn(start, before, done);""", sort))
        errors = browser.severe()
        rows = len(browser.find('[data-table="queues"] tbody tr'))
        print()
        print("Warren's web console, %d queues, %d rows a page (%d drawn), %d rounds; ms: median, min, max;"
              % (args.queues, args.page_size, rows, args.rounds))
        print("last column: the median of the /api/queues request alone as the browser timed it")
        print("  %-46s %s %s" % ("", "  median      min      max", "  its API request"))
        for label, values in (("cold load of #/queues (page, modules, data)", cold), ("overview -> queue list", opened),
                              ("re-sort by ready messages (click to drawn)", by_ready),
                              ("re-sort by name (click to drawn)", by_name)):
            print("  %-46s %s %10.1f" % (label, summary([v[0] for v in values]), statistics.median(v[1] for v in values)))
        print("  %-46s %s" % ("API alone, from Python: sorted by name", summary(api["name"])))
        print("  %-46s %s" % ("API alone, from Python: sorted by ready", summary(api["ready"])))
        if errors:
            print("browser console errors: %s" % errors)
    finally:
        if browser:
            browser.quit()
        if broker.poll() is None:
            broker.terminate()
            broker.wait(30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
