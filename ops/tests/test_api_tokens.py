"""A token is shown once, in the body of the response that issues it: never in a cookie,
a header, the session or a log line (issue 16: the admin used to put it in Django's
message cookie, signed and compressed but readable by anyone who sees the cookie)."""

from __future__ import annotations

import logging
import re
import zlib
from importlib import import_module
from urllib.parse import unquote

import pytest
from django.conf import settings
from django.contrib.messages import WARNING
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.core import signing
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse

from ops.api.models import ApiClient

ADD = "/admin/ops/apiclient/add/"
TOKEN = re.compile(r"iq_[A-Za-z0-9_-]{43}")


def signed_payload(value: str) -> str:
    """The payload of a django.core.signing value ("payload:signature", or
    "payload:timestamp:signature"), base64-decoded and, when compressed ("." first),
    inflated: what anyone reads from such a cookie without the key. "" if not one."""
    payload = value.split(":", 1)[0]
    compressed = payload.startswith(".")
    try:
        data = signing.b64_decode(payload.removeprefix(".").encode())
        return (zlib.decompress(data) if compressed else data).decode(errors="replace")
    except (ValueError, zlib.error):
        return ""


def readable_forms(name: str, value: str) -> list[str]:
    """Every way the cookie `name=value` can be read: as sent, URL-decoded, its signed
    payload decoded, the message storage's own decoding, and the session it names."""
    forms = [value, unquote(value), signed_payload(value), signed_payload(unquote(value))]
    if name == CookieStorage.cookie_name:
        decoded = CookieStorage(HttpRequest())._decode(value)
        forms += [str(message) for message in decoded or []]
    if name == settings.SESSION_COOKIE_NAME:
        forms.append(repr(import_module(settings.SESSION_ENGINE).SessionStore(session_key=value).load()))
    return forms


@pytest.mark.parametrize("button", ["_save", "_addanother", "_continue"])
def test_an_admin_issued_token_is_only_in_the_page_that_issues_it(admin_client_logged_in, caplog, button):
    caplog.set_level(logging.DEBUG)
    client = admin_client_logged_in
    flow = [("GET add", client.get(ADD))]
    answer = client.post(ADD, {"name": "alertmanager", "scopes": ["alerts"], button: "1"})
    flow.append(("POST add", answer))
    while flow[-1][1].status_code in (301, 302, 303):
        location = flow[-1][1]["Location"]
        flow.append((f"GET {location}", client.get(location)))
    # The pages a person opens next, where anything deferred (a message) would show.
    flow.append(("GET list", client.get("/admin/ops/apiclient/")))
    flow.append(("GET change", client.get(f"/admin/ops/apiclient/{ApiClient.objects.get().pk}/change/")))

    shown = {step: TOKEN.findall(response.content.decode()) for step, response in flow}
    tokens = {token for found in shown.values() for token in found}
    assert len(tokens) == 1, shown
    (token,) = tokens
    assert ApiClient.objects.for_token(token).name == "alertmanager"

    leaks = {}
    for step, response in flow:
        if step != "POST add" and token in response.content.decode():
            leaks[(step, "body")] = "token in a page other than the add's answer"
        for header, value in response.headers.items():
            if token in value:
                leaks[(step, f"header {header}")] = value
        for name, morsel in response.cookies.items():
            if any(token in form for form in readable_forms(name, morsel.value)):
                leaks[(step, f"cookie {name}")] = morsel.value
    for name, morsel in client.cookies.items():  # the browser's cookie jar at the end
        if any(token in form for form in readable_forms(name, morsel.value)):
            leaks[("jar", f"cookie {name}")] = morsel.value
    for record in caplog.records:
        if token in record.getMessage():
            leaks[("log", record.name)] = record.getMessage()
    assert leaks == {}
    assert token in answer.content.decode()  # shown once: in the answer to the add itself
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]  # nor kept in the browser's cache


def test_the_cookie_decoding_reads_a_token_in_a_compressed_message_cookie():
    """The check above would see a token that travels as the admin used to send it: in
    Django's message cookie, signed and compressed, so not visible as sent."""
    token = "iq_" + "A" * 43
    response = HttpResponse()
    CookieStorage(HttpRequest())._store(
        [Message(WARNING, f"Token: {token} " + "copy it now " * 40)], response
    )
    value = response.cookies[CookieStorage.cookie_name].value
    assert value.startswith(".")  # compressed
    assert token not in value
    assert any(token in form for form in readable_forms(CookieStorage.cookie_name, value))


def test_the_command_prints_the_token_to_stdout_only(db, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    call_command("create_api_token", "trading-engine")
    printed = capsys.readouterr()
    token = printed.out.strip()
    assert ApiClient.objects.for_token(token).name == "trading-engine"
    assert token not in printed.err
    assert [record.name for record in caplog.records if token in record.getMessage()] == []
