"""The web console (SPEC §23) in a real browser: Debian's Chromium, headless,
driven by Playwright (launched with executable_path: nothing is downloaded).

Run by tests/console.rs, which passes the hulykvs binary and Chromium. Each
case gets a fresh browser context (its own sessionStorage) and a namespace of
its own on one server (SQLite, in a temporary directory); the watch case
restarts that server. Controls are found by role and accessible name, as
SPEC §23 lists them. Every page is watched for script errors, CSP violations
and requests to another origin; any of them fails the case.

    python3 tests/browser/console.py --bin target/debug/hulykvs \\
        --chromium /usr/bin/chromium --artifacts target/tmp/console
    ... --measure    # the performance figures instead of the cases
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

SECRET = "console-test-secret"
WORKSPACE = "6f1c2a4e-3b5d-4c7e-9a1b-2c3d4e5f6a7b"
ACCOUNT = "0a0b0c0d-1111-4222-8333-444455556666"
LIMIT = 64_000  # HULY_PAYLOAD_SIZE_LIMIT of the server under test

ACL = f"""
[[allow]]
service = "tester"
namespaces = ["*"]
access = "read-write"

[[allow]]
account = "{ACCOUNT}"
namespaces = ["t-*"]
access = "read-write"

[[allow]]
account = "{ACCOUNT}"
namespaces = ["readonly"]
access = "read"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `hulykvs serve` on SQLite, restartable on the same port and file."""

    def __init__(self, binary, workdir, extra_env=None):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.process = None
        self.log = open(os.path.join(workdir, f"serve-{self.port}.log"), "ab")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ)
        env.update(
            {
                "HULY_DB_CONNECTION": f"sqlite:{os.path.join(self.workdir, f'kvs-{self.port}.db')}",
                "HULY_BIND_HOST": "127.0.0.1",
                "HULY_BIND_PORT": str(self.port),
                "HULY_TOKEN_SECRET": SECRET,
                "HULY_PAYLOAD_SIZE_LIMIT": str(LIMIT),
                "RUST_LOG": "warn",
            }
        )
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [self.binary, "serve"], env=env, stdout=self.log, stderr=self.log
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hulykvs serve exited with {self.process.returncode}; log in {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("hulykvs serve did not become ready in 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def mint(binary, *args, secret=SECRET):
    out = subprocess.run(
        [binary, "token", "--secret", secret, *args], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class Api:
    """Another client of the service: what a calendar sync would do beside the console."""

    def __init__(self, url, token):
        self.url = url
        self.token = token

    def request(self, method, ns, key=None, body=None, headers=None, query=None):
        path = f"/api2/{WORKSPACE}/{urllib.parse.quote(ns, safe='')}"
        if key is not None:
            path += "/" + urllib.parse.quote(key, safe="")
        if query:
            path += "?" + query
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def put(self, ns, key, value, content_type="text/plain; charset=utf-8", **headers):
        body = value if isinstance(value, bytes) else value.encode()
        status, h, _ = self.request("PUT", ns, key, body, {"Content-Type": content_type, **headers})
        assert status in (201, 204), f"PUT {key}: {status}"
        return h

    def get(self, ns, key):
        return self.request("GET", ns, key)

    def txn_puts(self, ns, items):
        ops = [
            {"op": "put", "namespace": ns, "key": k, "value": __import__("base64").b64encode(v.encode()).decode()}
            for k, v in items
        ]
        req = urllib.request.Request(
            f"{self.url}/api2/{WORKSPACE}?txn", data=json.dumps({"ops": ops}).encode(), method="POST"
        )
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200


class Watched:
    """A page whose script errors, CSP violations and foreign requests are kept."""

    def __init__(self, context, origin):
        self.problems = []
        self.requests = []
        page = context.new_page()
        page.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', e =>"
            " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))

        def on_console(msg):
            # Chromium logs every 4xx/5xx a fetch gets as "Failed to load resource";
            # those are the answers the cases ask for, not script errors.
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                self.problems.append(f"console error: {msg.text}")

        page.on("console", on_console)

        def on_request(req):
            self.requests.append(req.url)
            if not (req.url.startswith(origin + "/") or req.url.startswith(("blob:", "data:"))):
                self.problems.append(f"request to another origin: {req.url}")

        page.on("request", on_request)
        self.page = page

    def check(self):
        violations = self.page.evaluate("window.__violations")
        assert not violations, f"CSP violations: {violations}"
        assert not self.problems, "; ".join(self.problems)


class Suite:
    def __init__(self, args, browser, workdir):
        self.args = args
        self.browser = browser
        self.workdir = workdir
        acl = os.path.join(workdir, "acl.toml")
        with open(acl, "w") as f:
            f.write(ACL)
        self.server = Server(args.bin, workdir, {"HULY_ACL_FILE": acl})
        self.server.start()
        self.token = mint(args.bin, "--account", ACCOUNT, "--workspace", WORKSPACE)
        self.api = Api(self.server.url, mint(args.bin, "--system", "--service", "tester"))
        self.shots = args.artifacts
        os.makedirs(self.shots, exist_ok=True)

    def close(self):
        self.server.stop()

    # -- helpers

    def open_console(self, viewport=None, server=None):
        server = server or self.server
        context = self.browser.new_context(viewport=viewport or {"width": 1400, "height": 900})
        watched = Watched(context, server.url)
        watched.page.goto(server.url + "/console")
        return context, watched

    def sign_in(self, page, token=None):
        box = page.get_by_role("textbox", name="Token", exact=True)
        box.fill(token or self.token)
        box.press("Enter")
        expect(page.get_by_role("textbox", name="Workspace", exact=True)).to_be_visible()

    def list_ns(self, page, ns, prefix=""):
        page.get_by_role("textbox", name="Namespace", exact=True).fill(ns)
        page.get_by_role("textbox", name="Prefix", exact=True).fill(prefix)
        page.get_by_role("button", name="List", exact=True).click()

    def key_button(self, page, key):
        return page.get_by_role("table", name="Keys").get_by_role("button", name=key, exact=True)

    def entry(self, page):
        return page.get_by_role("region", name="Entry", exact=True)

    def shot(self, page, name):
        page.screenshot(path=os.path.join(self.shots, f"{name}.png"), full_page=True)

    def rows(self, page):
        return page.get_by_role("table", name="Keys").get_by_role("button")

    # -- the cases

    def case_headers_and_size(self):
        context, w = self.open_console()
        page = w.page
        total = 0
        for path in ["/console", "/console/console.js", "/console/console.css"]:
            response = page.request.get(self.server.url + path, headers={"Accept-Encoding": "gzip"})
            h = response.headers
            assert h["content-security-policy"] == (
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ), h
            assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
            assert h.get("content-encoding") == "gzip", h
            assert h.get("etag"), h
            total += len(response.body())
        assert total < 200_000, total
        # Everything the page loaded came from /console.
        loaded = [u for u in w.requests if not u.startswith(("blob:", "data:"))]
        assert all(urllib.parse.urlsplit(u).path.startswith("/console") for u in loaded), loaded
        w.check()
        context.close()

    def case_sign_in_with_enter(self):
        context, w = self.open_console()
        page = w.page
        self.shot(page, "01-sign-in")
        self.sign_in(page)
        expect(page.get_by_role("textbox", name="Workspace", exact=True)).to_have_value(WORKSPACE)
        expect(page.get_by_text(f"account {ACCOUNT}")).to_be_visible()
        expect(page.get_by_role("textbox", name="Token", exact=True)).to_be_hidden()
        w.check()
        context.close()

    def case_a_refused_token_returns_to_sign_in(self):
        context, w = self.open_console()
        page = w.page
        self.sign_in(page, mint(self.args.bin, "--account", ACCOUNT, "--workspace", WORKSPACE, secret="not-the-secret"))
        self.list_ns(page, "t-refused")
        expect(page.get_by_role("textbox", name="Token", exact=True)).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("401")
        assert page.evaluate("sessionStorage.length") == 0
        # Not a JWT at all: said at once, no request.
        box = page.get_by_role("textbox", name="Token", exact=True)
        box.fill("hello")
        box.press("Enter")
        expect(page.get_by_role("alert")).to_contain_text("not a token")
        w.check()
        context.close()

    def case_the_token_stays_in_session_storage_only(self):
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.api.put("t-storage", "k", "v")
        self.list_ns(page, "t-storage")
        expect(self.key_button(page, "k")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('hulykvs.token')") == self.token
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate("document.cookie") == ""
        assert context.cookies() == []
        page.reload()
        expect(page.get_by_role("textbox", name="Workspace", exact=True)).to_have_value(WORKSPACE)
        expect(page.get_by_role("textbox", name="Namespace", exact=True)).to_have_value("t-storage")
        page.get_by_role("button", name="List", exact=True).click()
        expect(self.key_button(page, "k")).to_be_visible()
        assert self.token not in page.url
        assert all(self.token not in u for u in w.requests)
        w.check()
        context.close()

    def case_listing_in_pages(self):
        ns = "t-pages"
        keys = [f"dir/{i:03}" for i in range(250)]
        for at in range(0, len(keys), 100):
            self.api.txn_puts(ns, [(k, "x") for k in keys[at : at + 100]])
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        expect(self.rows(page)).to_have_count(100)
        expect(self.key_button(page, "dir/099")).to_be_visible()
        self.shot(page, "02-listing")
        more = page.get_by_role("button", name="More", exact=True)
        more.click()
        expect(self.rows(page)).to_have_count(200)
        more.click()
        expect(self.rows(page)).to_have_count(250)
        expect(more).to_be_hidden()
        names = self.rows(page).all_inner_texts()
        assert names == keys, names[:5]
        # The prefix box narrows the listing.
        self.list_ns(page, ns, "dir/24")
        expect(self.rows(page)).to_have_count(10)
        expect(more).to_be_hidden()
        w.check()
        context.close()

    def case_open_and_save_keep_type_and_expiry(self):
        ns = "t-save"
        self.api.put(ns, "notes/today.md", "# hello", content_type="text/markdown", **{"Huly-TTL": "3600"})
        _, before, _ = self.api.get(ns, "notes/today.md")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        self.key_button(page, "notes/today.md").click()
        entry = self.entry(page)
        value = entry.get_by_role("textbox", name="Value", exact=True)
        expect(value).to_have_value("# hello")
        expect(entry).to_contain_text("text/markdown")
        expect(entry).to_contain_text(before["etag"].strip('"'))
        expect(entry).to_contain_text("left")
        assert entry.get_by_role("textbox", name="TTL", exact=True).input_value() not in ("", None)
        self.shot(page, "03-entry")
        value.fill("# hello\n\nedited")
        entry.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Saved")
        status, after, body = self.api.get(ns, "notes/today.md")
        assert body == b"# hello\n\nedited", body
        assert after["content-type"] == "text/markdown", after
        assert after["huly-expire-at"] == before["huly-expire-at"], (before, after)
        expect(entry).to_contain_text(after["etag"].strip('"'))
        expect(entry).to_contain_text("revision")
        # An emptied TTL box removes the expiry; a new number sets one.
        entry.get_by_role("textbox", name="TTL", exact=True).fill("")
        entry.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Saved")
        _, cleared, _ = self.api.get(ns, "notes/today.md")
        assert "huly-expire-at" not in cleared, cleared
        w.check()
        context.close()

    def case_json_is_formatted_only_on_request(self):
        ns = "t-json"
        compact = '{"sync":"token-1","pages":[1,2]}'
        self.api.put(ns, "state", compact, content_type="application/json")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        self.key_button(page, "state").click()
        entry = self.entry(page)
        value = entry.get_by_role("textbox", name="Value", exact=True)
        expect(value).to_have_value(compact)
        entry.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Saved")
        assert self.api.get(ns, "state")[2] == compact.encode()
        entry.get_by_role("button", name="Format as JSON", exact=True).click()
        expect(value).to_have_value(json.dumps(json.loads(compact), indent=2, separators=(",", ": ")))
        w.check()
        context.close()

    def case_a_save_after_another_writer_changes_nothing(self):
        ns = "t-conflict"
        self.api.put(ns, "k", "first")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        self.key_button(page, "k").click()
        value = self.entry(page).get_by_role("textbox", name="Value", exact=True)
        expect(value).to_have_value("first")
        self.api.put(ns, "k", "theirs")
        value.fill("mine")
        self.entry(page).get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("412")
        self.shot(page, "04-conflict")
        assert self.api.get(ns, "k")[2] == b"theirs"
        expect(value).to_have_value("mine")
        self.entry(page).get_by_role("button", name="Reload", exact=True).click()
        expect(value).to_have_value("theirs")
        w.check()
        context.close()

    def case_create_with_a_ttl_and_of_an_existing_key(self):
        ns = "t-create"
        self.api.put(ns, "taken", "original")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        page.get_by_role("button", name="New key", exact=True).click()
        entry = self.entry(page)
        entry.get_by_role("textbox", name="Key", exact=True).fill("fresh")
        entry.get_by_role("textbox", name="Value", exact=True).fill("new value")
        entry.get_by_role("textbox", name="TTL", exact=True).fill("120")
        entry.get_by_role("button", name="Create", exact=True).click()
        expect(self.key_button(page, "fresh")).to_be_visible()
        status, h, body = self.api.get(ns, "fresh")
        assert status == 200 and body == b"new value", (status, body)
        assert h["content-type"] == "text/plain; charset=utf-8", h
        assert 100 <= int(h["huly-ttl"]) <= 120, h
        page.get_by_role("button", name="New key", exact=True).click()
        entry.get_by_role("textbox", name="Key", exact=True).fill("taken")
        entry.get_by_role("textbox", name="Value", exact=True).fill("overwrite?")
        entry.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("412")
        expect(page.get_by_role("alert")).to_contain_text("exists")
        assert self.api.get(ns, "taken")[2] == b"original"
        # A key the browser cannot address is refused before any request.
        entry.get_by_role("textbox", name="Key", exact=True).fill("..")
        entry.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("cannot be addressed from a browser")
        w.check()
        context.close()

    def case_delete_with_its_dialog(self):
        ns = "t-delete"
        self.api.put(ns, "gone", "bye")
        self.api.put(ns, "stays", "hi")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        self.key_button(page, "gone").click()
        self.entry(page).get_by_role("button", name="Delete", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        self.shot(page, "05-delete-dialog")
        dialog.get_by_role("button", name="Confirm", exact=True).click()
        expect(self.key_button(page, "gone")).to_have_count(0)
        expect(self.key_button(page, "stays")).to_be_visible()
        assert self.api.get(ns, "gone")[0] == 404
        w.check()
        context.close()

    def case_a_binary_value_is_hex_and_left_unchanged(self):
        ns = "t-binary"
        data = bytes([0, 1, 2, 0xFF, 0x7F, 0x0D, 0x0A]) + bytes(range(0x10, 0x22))
        self.api.put(ns, "blob", data, content_type="application/octet-stream")
        self.api.put(ns, "crlf", b"line\r\nline", content_type="text/plain")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        self.key_button(page, "blob").click()
        entry = self.entry(page)
        expect(entry).to_contain_text("00 01 02 ff 7f 0d 0a 10 11 12 13 14 15 16 17 18\n19 1a 1b 1c 1d 1e 1f 20 21")
        expect(entry.get_by_role("textbox", name="Value", exact=True)).to_have_count(0)
        expect(entry.get_by_label("Upload", exact=True)).to_be_visible()
        expect(entry.get_by_role("link", name="Download")).to_be_visible()
        self.shot(page, "06-binary")
        entry.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Saved")
        assert self.api.get(ns, "blob")[2] == data
        # A carriage return would not survive an editor: hex too.
        self.key_button(page, "crlf").click()
        expect(entry).to_contain_text("6c 69 6e 65 0d 0a")
        # Upload replaces the value with a file's bytes.
        self.key_button(page, "blob").click()
        expect(entry).to_contain_text("00 01 02 ff")
        entry.get_by_label("Upload", exact=True).set_input_files(
            files=[{"name": "new.bin", "mimeType": "application/octet-stream", "buffer": b"\x00uploaded"}]
        )
        entry.get_by_role("button", name="Save", exact=True).click()
        expect(entry).to_contain_text("00 75 70 6c 6f 61 64 65 64")
        assert self.api.get(ns, "blob")[2] == b"\x00uploaded"
        w.check()
        context.close()

    def case_markup_from_the_server_is_text(self):
        ns = "t-markup"
        key = "<img src=x onerror=window.__pwned=1>"
        value = "<script>window.__pwned=2</script><b>bold</b>"
        self.api.put(ns, key, value, content_type="text/html")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        self.key_button(page, key).click()
        entry = self.entry(page)
        expect(entry.get_by_role("textbox", name="Value", exact=True)).to_have_value(value)
        expect(entry.get_by_role("heading", name=key)).to_be_visible()
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img, b, main script").count() == 0
        # Characters a URL treats specially are percent-encoded whole.
        odd = "odd ?#%+&=;/x%2F/.."
        self.api.put(ns, odd, "odd value")
        self.list_ns(page, ns)
        self.key_button(page, odd).click()
        value = entry.get_by_role("textbox", name="Value", exact=True)
        expect(value).to_have_value("odd value")
        value.fill("odd value, saved")
        entry.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text("Saved")
        assert self.api.get(ns, odd)[2] == b"odd value, saved"
        w.check()
        context.close()

    def case_refusals_show_the_servers_message(self):
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        # The ACL lets this account read "readonly", not write it.
        self.list_ns(page, "readonly")
        expect(page.get_by_role("status")).to_contain_text("Listed 0 keys")
        page.get_by_role("button", name="New key", exact=True).click()
        entry = self.entry(page)
        entry.get_by_role("textbox", name="Key", exact=True).fill("k")
        entry.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("403")
        expect(page.get_by_role("alert")).to_contain_text("namespace_forbidden")
        # A value over the payload limit: 413 with the server's message.
        self.list_ns(page, "t-big")
        page.get_by_role("button", name="New key", exact=True).click()
        entry.get_by_role("textbox", name="Key", exact=True).fill("big")
        entry.get_by_role("textbox", name="Value", exact=True).fill("x" * (LIMIT + 1))
        entry.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("413")
        # A namespace the browser cannot address.
        self.list_ns(page, "..")
        expect(page.get_by_role("alert")).to_contain_text("cannot be addressed from a browser")
        w.check()
        context.close()

    def case_watch_resumes_after_a_restart_without_repeats(self):
        ns = "t-watch"
        self.api.put(ns, "open", "v0")
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        self.list_ns(page, ns)
        expect(self.key_button(page, "open")).to_be_visible()
        # A change between the listing and the stream is not lost.
        self.api.put(ns, "between", "b")
        watch = page.get_by_role("button", name="Watch", exact=True)
        watch.click()
        expect(watch).to_have_attribute("aria-pressed", "true")
        changes = page.get_by_role("list", name="Changes")
        expect(changes.get_by_role("listitem").filter(has_text="between")).to_have_count(1)
        self.key_button(page, "open").click()
        expect(self.entry(page).get_by_role("textbox", name="Value", exact=True)).to_have_value("v0")
        self.api.put(ns, "open", "v1")
        expect(changes.get_by_role("listitem").filter(has_text="open")).to_have_count(1)
        expect(self.entry(page)).to_contain_text("Changed since it was loaded")
        self.shot(page, "07-watch")
        self.server.stop()
        self.server.start()
        self.api.put(ns, "after-restart", "a")
        self.api.request("DELETE", ns, "between")
        expect(changes.get_by_role("listitem").filter(has_text="after-restart")).to_have_count(1)
        expect(changes.get_by_role("listitem").filter(has_text="delete")).to_have_count(1)
        items = changes.get_by_role("listitem").all_inner_texts()
        revisions = [int(re.search(r"revision (\d+)", t).group(1)) for t in items]
        assert revisions == sorted(set(revisions), reverse=True), items
        assert len(items) == 4, items
        watch.click()
        expect(watch).to_have_attribute("aria-pressed", "false")
        w.check()
        context.close()

    def case_watch_relists_when_the_history_is_gone(self):
        short = Server(self.args.bin, self.workdir, {"HULY_CHANGES_RETENTION": "1s"})
        short.start()
        try:
            api = Api(short.url, self.api.token)
            ns = "t-compacted"
            api.put(ns, "a", "1")
            context, w = self.open_console(server=short)
            page = w.page
            self.sign_in(page)
            self.list_ns(page, ns)
            expect(page.get_by_role("status")).to_contain_text("at revision 1")
            api.put(ns, "b", "2")
            api.put(ns, "c", "3")
            time.sleep(3)  # the changes after revision 1 are pruned
            page.get_by_role("button", name="Watch", exact=True).click()
            # The stream answered 410: the console listed again and watches from there.
            expect(page.get_by_role("status")).to_contain_text("at revision 3")
            expect(self.key_button(page, "c")).to_be_visible()
            api.put(ns, "d", "4")
            changes = page.get_by_role("list", name="Changes")
            expect(changes.get_by_role("listitem")).to_have_count(1)
            expect(changes.get_by_role("listitem")).to_contain_text("revision 4")
            w.check()
            context.close()
        finally:
            short.stop()

    def case_sign_out(self):
        context, w = self.open_console()
        page = w.page
        self.sign_in(page)
        page.get_by_role("button", name="Sign out", exact=True).click()
        expect(page.get_by_role("textbox", name="Token", exact=True)).to_be_visible()
        assert page.evaluate("sessionStorage.length") == 0
        page.reload()
        expect(page.get_by_role("textbox", name="Token", exact=True)).to_be_visible()
        w.check()
        context.close()

    def case_a_narrow_window_and_the_keyboard(self):
        ns = "t-narrow"
        self.api.put(ns, "a/b/c", "v")
        context, w = self.open_console(viewport={"width": 380, "height": 800})
        page = w.page
        page.keyboard.type(self.token)  # the Token box has the focus
        page.keyboard.press("Enter")
        page.get_by_role("textbox", name="Namespace", exact=True).focus()
        page.keyboard.type(ns)
        page.keyboard.press("Enter")
        button = self.key_button(page, "a/b/c")
        expect(button).to_be_visible()
        button.focus()
        page.keyboard.press("Enter")
        expect(self.entry(page).get_by_role("textbox", name="Value", exact=True)).to_have_value("v")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 380, f"the page is {width} px wide in a 380 px window"
        self.shot(page, "08-narrow")
        w.check()
        context.close()

    def case_the_route_is_gone_when_turned_off(self):
        off = Server(self.args.bin, self.workdir, {"HULY_CONSOLE": "off", "HULY_WORKER_THREADS": "1"})
        off.start()
        try:
            for path in ["/console", "/console/console.js"]:
                with self.assertRaisesStatus(404):
                    urllib.request.urlopen(off.url + path, timeout=5)
            with urllib.request.urlopen(off.url + "/livez", timeout=5) as r:
                assert r.status == 200
        finally:
            off.stop()

    class assertRaisesStatus:
        def __init__(self, status):
            self.status = status

        def __enter__(self):
            return self

        def __exit__(self, kind, error, tb):
            assert isinstance(error, urllib.error.HTTPError), f"expected HTTP {self.status}, got {error!r}"
            assert error.code == self.status, error.code
            return True


def run_cases(args):
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True)
        suite = Suite(args, browser, workdir)
        failed = []
        cases = [n for n in dir(Suite) if n.startswith("case_") and (not args.only or args.only in n)]
        try:
            for name in cases:
                started = time.time()
                try:
                    getattr(suite, name)()
                    print(f"ok   {name[5:]} ({time.time() - started:.1f} s)", flush=True)
                except Exception:
                    failed.append(name)
                    print(f"FAIL {name[5:]}\n{traceback.format_exc()}", flush=True)
        finally:
            suite.close()
            browser.close()
        print(f"console: {len(cases) - len(failed)} passed, {len(failed)} failed; screenshots in {args.artifacts}")
        return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--only", default="")
    parser.add_argument("--measure", action="store_true")
    args = parser.parse_args()
    if args.measure:
        from measure import measure  # tests/browser/measure.py

        return measure(args, Server, Api, mint)
    return run_cases(args)


if __name__ == "__main__":
    sys.exit(main())
