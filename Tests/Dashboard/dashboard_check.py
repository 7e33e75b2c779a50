#!/usr/bin/python3
"""Drives Fairway's dashboard in a real headless Chromium (Debian's `chromium`) over the DevTools protocol.

    /usr/bin/python3 Tests/Dashboard/dashboard_check.py --url http://127.0.0.1:PORT --token TOKEN \
        --queue QUEUE [--dead-letter] [--screenshot PATH]

Loads /dashboard, types the admin token, clicks "pause" on QUEUE and waits until the row says paused (and
/queues agrees), resumes it, and with --dead-letter clicks "requeue" on the newest dead letter and waits
until it is gone from the list and the audit list shows the requeue. Prints each step; exits 1 on the
first that fails. Needs chromium and python3-websocket (.ci/install --test installs both).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


class Browser:
    def __init__(self, width=1400, height=1700):
        self.profile = tempfile.mkdtemp(prefix="fairway-chromium-")
        self.process = subprocess.Popen(
            [
                "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint = None
        deadline = time.time() + 60
        while time.time() < deadline and endpoint is None:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                break
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                endpoint = match.group(1)
        if endpoint is None:
            raise SystemExit("chromium did not start (is it installed? apt-get install chromium)")
        port = re.search(r":(\d+)/", endpoint).group(1)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def send(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.1)
        raise SystemExit(f"FAILED: {what} (waited {timeout} s)")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        import base64
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        try:
            self.socket.close()
        finally:
            self.process.kill()
            self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def step(text):
    print(f"ok: {text}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--dead-letter", action="store_true")
    parser.add_argument("--screenshot")
    arguments = parser.parse_args()
    row = f'document.querySelector(`#queues tr[data-queue="{arguments.queue}"]`)'
    browser = Browser()
    try:
        browser.send("Page.enable")
        browser.send("Page.navigate", url=arguments.url + "/dashboard")
        browser.wait_for(f"!!{row}", f"the queue table lists {arguments.queue}")
        step(f"the page loaded and lists {arguments.queue}")
        browser.evaluate(
            f"(() => {{ const box = document.getElementById('token'); box.value = {json.dumps(arguments.token)};"
            " box.dispatchEvent(new Event('change')); document.getElementById('actor').value = 'chromium';"
            " document.getElementById('actor').dispatchEvent(new Event('change')); return true; })()")
        browser.wait_for(f"{row}.querySelector('.state').textContent !== 'paused'", "the queue starts unpaused")
        browser.evaluate(f"{row}.querySelector('button[data-action=pause]').click()")
        browser.wait_for(f"{row} && {row}.querySelector('.state').textContent === 'paused'", "the row says paused")
        queues = json.load(urllib.request.urlopen(arguments.url + "/queues"))
        if not next(q for q in queues if q["name"] == arguments.queue)["paused"]:
            raise SystemExit("FAILED: /queues does not say paused")
        step("clicked pause: the row and /queues say paused")
        if arguments.screenshot:
            browser.screenshot(arguments.screenshot)
            step(f"screenshot {arguments.screenshot}")
        browser.evaluate(f"{row}.querySelector('button[data-action=resume]').click()")
        browser.wait_for(f"{row} && {row}.querySelector('.state').textContent !== 'paused'", "the row is resumed")
        step("clicked resume: the row is no longer paused")
        if arguments.dead_letter:
            first = "document.querySelector('#dead-letters tr[data-dead-id]')"
            browser.wait_for(f"!!{first}", "a dead letter is listed")
            dead_id = browser.evaluate(f"{first}.getAttribute('data-dead-id')")
            browser.evaluate(f"{first}.querySelector('button[data-action=requeue]').click()")
            gone = f"!document.querySelector('#dead-letters tr[data-dead-id=\"{dead_id}\"]')"
            browser.wait_for(gone, f"dead letter {dead_id} leaves the list")
            browser.wait_for(
                "[...document.querySelectorAll('#audit td')].some(td => td.textContent === 'requeue')",
                "the audit list shows the requeue")
            step(f"clicked requeue on dead letter {dead_id}: it left the list and the audit shows it")
    finally:
        browser.close()
    print("dashboard check passed")


if __name__ == "__main__":
    main()
