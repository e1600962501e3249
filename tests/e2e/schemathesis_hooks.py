"""Schemathesis hooks of tests/integration/openapi.rs: a fresh account for every test case.

One shared account would not last: the run deletes it (DELETE /account) and replaces its key
(POST /account/rotate) within its first cases, and every later authenticated case would only
ever see 401. So each case registers its own account (the test server has its registration
limit off) and, for /update, names that account's own subdomain, so that the valid cases reach
the logic behind the authentication (for /persist, a persistuntil in the future). The API's address comes from ACME_DELEGATE_API.
"""

import json
import os
import time
import urllib.request

import schemathesis


@schemathesis.auth(refresh_interval=None)
class FreshAccount:
    """Registers an account per test case and sends its credentials."""

    def get(self, case, context):
        request = urllib.request.Request(os.environ["ACME_DELEGATE_API"] + "/register", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["X-Api-User"] = data["username"]
        case.headers["X-Api-Key"] = data["password"]
        if case.operation.path == "/update" and isinstance(case.body, dict):
            if isinstance(case.body.get("subdomain"), str):
                case.body["subdomain"] = data["subdomain"]
        # POST /persist: "in the future" is no schema keyword; a generated time is moved past
        # now (one in the past is refused with 400 bad_persistuntil, as documented).
        if case.operation.path == "/persist" and isinstance(case.body, dict):
            until = case.body.get("persistuntil")
            if isinstance(until, int) and not isinstance(until, bool) and until <= time.time():
                case.body["persistuntil"] = int(time.time()) + 3600 + abs(until) % 1000
            # params: tags are compared case-insensitively (no schema keyword says so); a
            # generated tag that repeats another or one of the named fields is dropped (it is
            # refused with 400 bad_params, as documented).
            params = case.body.get("params")
            if isinstance(params, dict):
                seen = {"accounturi", "policy", "persistuntil"}
                for tag in list(params):
                    if tag.lower() in seen:
                        del params[tag]
                    seen.add(tag.lower())
