"""The image API's faults (issue 12, items 1-6): a malformed key, Ctrl-C during a hung request, account errors,
Retry-After shared by every request, progress on a terminal, placeholders, cut bodies, duplicate claims.

Everything runs against the fake API (tests/fake_image_api.py) on 127.0.0.1, the CLI ones in a subprocess with
a real SQLite home; nothing needs the network.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_images_cli
from conftest import cli_env, db_snapshot
from fake_image_api import FakeImageAPI, make_image
from test_images import RecordingSleep, desc, fast_options, run
from test_images_cli import LAMP, image_rows, rows, runs_of

from bookreader_cli.images import files
from bookreader_cli.images.client import (
    ImageClient,
    ImageFetchError,
    ImageOptions,
    ImageRequest,
)

# the CLI fixtures of test_images_cli: the fake API (module-wide, reset per test), the sample book with five
# descriptions (ids 1..5), and `br`, the CLI pointed at the fake
server, api, book, br = test_images_cli.server, test_images_cli.api, test_images_cli.book, test_images_cli.br

KEY = "sk_live_Zq81TokenValue12345"


def leaks(text: str, key: str = KEY) -> bool:
    """Whether text holds the key or a long piece of its start, in any spelling."""
    return any(form in text for form in (key, key[:12], key.encode("unicode_escape").decode()))


# ---- 1. a malformed API key -----------------------------------------------------------------------
@pytest.mark.parametrize("raw", [KEY + "\r", KEY + "\n", KEY + " ", "\t" + KEY + "\r\n"])
def test_a_key_with_stray_whitespace_is_trimmed_sent_and_never_leaks(home, book, br, api, raw):
    api.script = {LAMP: "echo"}  # a careless server echoing the Authorization header in its error body
    res = br("generate-images", "1", "2", "--json", env={"POLLINATIONS_API_KEY": raw})
    assert res.code == 0, res.stderr
    assert {r.authorization for r in api.requests} == {f"Bearer {KEY}"}  # sent, trimmed, once each
    assert len(api.requests) == 2
    out = res.json()
    assert out["generated_count"] == 1 and "400" in out["failed"][0]["error"] and "***" in out["failed"][0]["error"]
    assert "whitespace around it" in res.stderr  # said once, without the key
    dump = "\n".join(sqlite3.connect(home / "bookreader.db").iterdump())
    for text in (res.stdout, res.stderr, dump):
        assert not leaks(text)


@pytest.mark.parametrize(
    "raw,what",
    [
        ("sk_live_Zq81Tökén12345", "a non-ASCII character at position 14"),
        ("sk_live_Zq81\rToken12345", "a control character (0x0d) at position 13"),
        ("sk_live Zq81Token12345", "a space at position 8"),
        ("  \r\n", "only whitespace"),
    ],
)
def test_an_unusable_key_is_refused_with_exit_2_before_anything_is_sent(home, book, br, api, raw, what):
    before = db_snapshot(home)
    for args in (("generate-images", "1", "2"), ("generate-images", "--book", "1")):
        res = br(*args, env={"POLLINATIONS_API_KEY": raw})
        assert res.code == 2, res.stderr
        assert res.stderr.strip() == f"error: the API key in $POLLINATIONS_API_KEY has {what}" + (
            "; unset it or set the real key"
            if what == "only whitespace"
            else "; an HTTP header carries printable ASCII only"
        )
        assert "Traceback" not in res.stderr and res.stdout == ""
    res = br("--json", "generate-images", "1", env={"POLLINATIONS_API_KEY": raw})
    assert res.code == 2 and json.loads(res.stderr)["exit_code"] == 2
    assert api.requests == [] and db_snapshot(home) == before
    assert not leaks(res.stderr, raw.strip() or "unused-key")


def test_check_api_key():
    from bookreader_cli.images.secret import BadApiKey, check_api_key

    assert check_api_key(None, "K") is None and check_api_key("", "K") is None
    assert check_api_key(f" {KEY}\r\n", "K") == KEY
    with pytest.raises(BadApiKey, match=r"the API key in \$K has a non-ASCII"):
        check_api_key("sk_ключ", "K")


def test_redaction_covers_every_spelling_of_the_key():
    from bookreader_cli.images.secret import redact

    key = KEY + "\r"
    texts = [
        f"Illegal header value b'Bearer {KEY}\\r'",  # h11's message: the key escaped
        f"header {key!r} refused",  # repr'd
        json.dumps({"you_sent": f"Bearer {key}"}),  # JSON-escaped
        f"token {KEY[:14]}… was rejected",  # a server quoting only the start
        f"exact {key} here",
    ]
    for text in texts:
        scrubbed = redact(text, key)
        assert "***" in scrubbed and not leaks(scrubbed), scrubbed
    assert redact("nothing secret", key) == "nothing secret"
    assert redact("sk_live is a common word", key) == "sk_live is a common word"  # shorter than a long prefix


def test_a_local_protocol_error_is_not_retried_and_its_text_is_scrubbed(caplog):
    """h11 refusing a header locally sends nothing: retrying it only repeats the refusal (and the key)."""
    caplog.set_level(logging.INFO)
    calls = []

    def refuse(request: httpx.Request):
        calls.append(request)
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {KEY}\\r'")

    options = ImageOptions(base_url="http://127.0.0.1:9", max_retries=3, backoff_base=0.01, rate_per_second=0)
    client = ImageClient(options, api_key=KEY, transport=httpx.MockTransport(refuse), sleep=RecordingSleep())
    with client, pytest.raises(ImageFetchError) as failure:
        client.fetch(ImageRequest("a lake", 1, "flux", 1024, 768))
    assert len(calls) == 1 and failure.value.attempts == 1 and not failure.value.retryable
    assert "refused locally" in str(failure.value) and not leaks(str(failure.value)) and not leaks(caplog.text)


# ---- 2. Ctrl-C while a request hangs --------------------------------------------------------------
def _cli_env(home: Path, api: FakeImageAPI, **extra) -> dict:
    fixed = {
        "BOOKREADER_IMAGES_BASE_URL": api.base_url,
        "BOOKREADER_IMAGES_BACKOFF_BASE": "0.01",
        "BOOKREADER_IMAGES_RATE_PER_SECOND": "0",
        "POLLINATIONS_API_KEY": "",
    }
    return cli_env(home, **{**fixed, **extra})


def _wait_for(condition, seconds: float = 60.0, what: str = "condition") -> None:
    """A hang guard, not a timing assertion: poll until condition() holds or fail after `seconds`."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _completed_rows(home: Path) -> int:
    try:
        return len([r for r in image_rows(home) if r["status"] == "completed"])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("args", [("1", "2", "3"), ("--book", "1", "--limit", "3")])
def test_ctrl_c_during_a_hung_request_exits_130_at_once_and_a_rerun_draws_the_rest(home, book, br, api, args):
    api.hang_seconds = 300.0  # far past any bound below; the client's read timeout is 120 s
    api.script = {LAMP: "hang"}  # description 2 hangs, 1 and 3 answer at once
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookreader_cli", "generate-images", *args],
        env=_cli_env(home, api),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _completed_rows(home) == 2 and len(api.requests_for(LAMP)) == 1, what="1 and 3 drawn")
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)  # the hang guard: the old code lived until the read timeout
        except subprocess.TimeoutExpired:
            pytest.fail("still running 20 s after Ctrl-C")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    task = "generate_images" if args[0] != "--book" else "batch_generate_for_book"
    [run_row] = runs_of(home, task)
    assert run_row["state"] == "FAILURE" and run_row["error"] == "interrupted"
    assert {r["description_id"] for r in image_rows(home)} == {1, 3}  # nothing recorded for the cancelled one

    api.script = {}
    res = br("generate-images", *args, "--json")
    assert res.code == 0, res.stderr
    drawn_again = [g["description_id"] for g in res.json()["generated_images"]]
    # only what was missing is asked: 2 again (its request was cut), never 1 or 3 (a batch of 3 adds 4 and 5)
    assert drawn_again == ([2] if args[0] != "--book" else [2, 4, 5]) and len(api.requests_for(LAMP)) == 2
    assert len(api.requests) == 3 + len(drawn_again)
    assert {1, 2, 3} <= {r["description_id"] for r in image_rows(home) if r["status"] == "completed"}


def test_cancel_ends_a_blocked_read_and_every_wait(tmp_path):
    """In-process: cancel() from another thread ends a read blocked on a silent server, and later waits."""
    from bookreader_cli.images.client import FetchCancelled

    with FakeImageAPI(hang_seconds=300) as api:
        client = ImageClient(fast_options(api, read_timeout=120, total_timeout=300))
        outcome = []

        def fetch():
            try:
                client.fetch(ImageRequest("fake:hang a well", 1, "flux", 1024, 768))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=fetch)
        worker.start()
        _wait_for(lambda: len(api.requests) == 1, what="the request")
        client.cancel()
        worker.join(20)
        assert not worker.is_alive() and isinstance(outcome[0], FetchCancelled)
        with pytest.raises(FetchCancelled):
            client.fetch(ImageRequest("a well", 1, "flux", 1024, 768))
        assert len(api.requests) == 1
        client.close()


# ---- 3. account errors stop the batch -------------------------------------------------------------
@pytest.mark.parametrize("step", ["401", "402", "403@account"])
def test_an_account_error_stops_the_batch(tmp_path, step, caplog):
    with FakeImageAPI() as api:
        ds = [desc(1, "A garden"), desc(2, f"fake:{step} A palace"), desc(3, "A tower"), desc(4, "A bridge")]
        result, rows_ = run(api, ds, tmp_path, concurrency=1)
        assert len(api.requests) == 2  # the garden and the palace: nothing after the account error
    assert result["generated_count"] == 1 and result["failed_count"] == 3 and result["not_attempted_count"] == 2
    assert step.split("@")[0] in result["account_error"]
    assert [f["description_id"] for f in result["failed"]] == [2, 3, 4]
    assert all(
        f["error"].startswith("not attempted: the batch stopped on an account error") for f in result["failed"][1:]
    )
    assert len(rows_) == 4  # every row recorded, so the store agrees with the result
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "account error" in warnings[0].getMessage()


def test_a_403_that_is_not_about_the_account_fails_only_its_image(tmp_path):
    with FakeImageAPI() as api:
        ds = [desc(1, "fake:403 A palace"), desc(2, "A tower"), desc(3, "A bridge")]
        result, _ = run(api, ds, tmp_path, concurrency=1)
        assert len(api.requests) == 3
    assert result["generated_count"] == 2 and result["account_error"] is None and result["not_attempted_count"] == 0


def test_an_account_error_exits_1_with_one_line_and_a_json_field(home, book, br, api):
    api.script = {LAMP: "402"}
    one = {"BOOKREADER_IMAGES_CONCURRENCY": "1"}
    res = br("generate-images", "2", "1", "3", "4", "--json", env=one)
    assert res.code == 1, res.stderr
    out = res.json()
    assert "402" in out["account_error"] and out["not_attempted_count"] == 3 and out["generated_count"] == 0
    assert len(api.requests) == 1
    lines = [line for line in res.stderr.splitlines() if "account" in line]
    assert len(lines) == 1 and "402" in lines[0]
    assert [r["error"].split(":")[0] for r in image_rows(home)] == [
        "not attempted",
        "HTTP 402 Payment Required",
        "not attempted",
        "not attempted",
    ]
    # a picture made before the account error does not make the run a success
    res = br("generate-images", "1", "2", "3", env=one)
    assert res.code == 1 and len(api.requests) == 3
    assert len([line for line in res.stderr.splitlines() if "account error" in line]) == 1


# ---- 4. Retry-After pauses every request ----------------------------------------------------------
def test_retry_after_pauses_every_worker_of_the_client(tmp_path):
    """One request gets 429 Retry-After: 2; the other workers' retries (after their 500s) wait for it too."""
    with FakeImageAPI() as api:
        ds = [
            desc(1, "fake:429@2,png A market"),
            desc(2, "fake:slow500@0.6,png A quay"),
            desc(3, "fake:slow500@0.6,png A mill"),
        ]
        result, _ = run(
            api, ds, tmp_path, sleep=RecordingSleep(real=True), concurrency=3, backoff_base=0.01, backoff_max=0.02
        )
        assert result["generated_count"] == 3
        [limited] = [r for r in api.requests if r.step.startswith("429")]
        by_prompt: dict[str, list] = {}
        for r in api.requests:
            by_prompt.setdefault(r.prompt, []).append(r)
        retries = [r for group in by_prompt.values() for r in group[1:]]
    assert len(retries) == 3  # the market's, and the quay's and the mill's after their 500s (old: at ~0.6 s)
    assert all(r.at >= limited.finished_at + 2.0 for r in retries), [r.at - limited.finished_at for r in retries]


# ---- 6. placeholders, cut and HTML bodies, give-up warnings ---------------------------------------
def test_a_placeholder_is_not_stored_and_is_retried(tmp_path):
    with FakeImageAPI() as api:
        result, _ = run(api, [desc(1, "fake:placeholder A hall")], tmp_path, max_retries=2)
        assert len(api.requests) == 3
    assert result["failed_count"] == 1 and "placeholder" in result["failed"][0]["error"]
    assert "64x48 for 1024x768 asked" in result["failed"][0]["error"]
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").iterdir())
    with FakeImageAPI() as api:
        result, _ = run(api, [desc(1, "fake:placeholder,png A hall")], tmp_path)
        assert result["generated_count"] == 1 and len(api.requests) == 2


def test_a_known_placeholder_picture_is_recognised(monkeypatch):
    import hashlib

    data = make_image("PNG", 3, (1024, 768))
    info = files.validate_image(data, "image/png")
    assert files.placeholder_reason(data, info, 1024, 768) is None
    monkeypatch.setattr(files, "KNOWN_PLACEHOLDER_MD5", frozenset({hashlib.md5(data).hexdigest()}))
    assert files.placeholder_reason(data, info, 1024, 768) == "the API's known placeholder picture"


@pytest.mark.parametrize("step", ["cut", "html", "reset", "truncated"])
def test_cut_html_and_reset_bodies_are_retried_alike_and_bounded(tmp_path, step):
    with FakeImageAPI() as api:
        result, _ = run(api, [desc(1, f"fake:{step},png A road")], tmp_path)
        assert result["generated_count"] == 1 and len(api.requests) == 2
    with FakeImageAPI() as api:
        result, _ = run(api, [desc(1, f"fake:{step} A road")], tmp_path, max_retries=2)
        assert len(api.requests) == 3 and result["failed_count"] == 1
        assert "gave up after 3 attempts" in result["failed"][0]["error"]


def test_giving_up_on_a_long_retry_after_or_the_deadline_warns(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with FakeImageAPI() as api:
        result, _ = run(api, [desc(1, "fake:429@900 A dock")], tmp_path, max_retry_after=300)
        assert "more than 300s" in result["failed"][0]["error"]
        result, _ = run(api, [desc(2, "fake:429@20 A pier")], tmp_path, total_timeout=5)
        assert "deadline" in result["failed"][0]["error"]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("more than 300s" in m for m in messages) and any("deadline" in m for m in messages)


def test_retry_after_is_shared_by_processes_on_one_home(home, book, api):
    """Process A gets 429 Retry-After: 3; process B, started inside that pause, waits for its end too."""
    api.script = {"Село Устье": "429@3,png"}
    env = _cli_env(home, api)
    first = subprocess.Popen(
        [sys.executable, "-m", "bookreader_cli", "generate-images", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: any(r.finished_at for r in api.requests_for("Село Устье")), what="the 429")
        _wait_for(lambda: _paused(home), 20, "the pause in the store")  # A has heard the 429 and shared it
        [limited] = api.requests_for("Село Устье")
        second = subprocess.run(
            [sys.executable, "-m", "bookreader_cli", "generate-images", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    [other] = api.requests_for("Кузьма")
    assert other.at >= limited.finished_at + 3.0, other.at - limited.finished_at


def _paused(home: Path) -> bool:
    try:
        return bool(rows(home, "SELECT paused_until FROM api_pauses"))
    except sqlite3.OperationalError:  # no such table (the old schema) or busy: not yet
        return False


# ---- 5. progress on a terminal --------------------------------------------------------------------
def _run_on_a_terminal(args: list[str], env: dict, timeout: float = 60) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); return (exit code, what the terminal got)."""
    import pty

    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookreader_cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    try:
        proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_generate_images_shows_a_progress_bar_on_a_terminal_only(home, book, br, api):
    env = _cli_env(home, api, COLUMNS="120")
    env.pop("NO_COLOR", None)
    code, screen = _run_on_a_terminal(["generate-images", "1", "2", "3"], env)
    assert code == 0, screen
    assert "images" in screen and "3/3" in screen  # the bar's label and its count, as `process` shows
    code, screen = _run_on_a_terminal(["generate-images", "--book", "1", "--limit", "2"], dict(env, NO_COLOR="1"))
    assert code == 0 and "2/2" not in screen  # NO_COLOR: no bar
    res = br("generate-images", "4", "5")  # stderr a pipe: no bar either
    assert res.code == 0 and "2/2" not in res.stderr


# ---- 6. two runs at once do not ask twice ---------------------------------------------------------
@pytest.mark.parametrize("args", [("--book", "1", "--limit", "2"), ("1", "2")])
def test_two_concurrent_runs_never_send_the_same_request_twice(home, book, api, args):
    api.set_default("slow@1")
    env = _cli_env(home, api)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bookreader_cli", "generate-images", *args, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=120))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    prompts = [r.prompt for r in api.requests]
    assert len(prompts) == len(set(prompts)), "a description was asked twice"
    done = sorted(r["description_id"] for r in image_rows(home) if r["status"] == "completed")
    if args[0] == "--book":  # the second run took the next two by priority instead
        assert done == [1, 2, 3, 4]
    else:  # the second run left them to the first and said so
        assert done == [1, 2]
        results = [json.loads(out) for out, _ in outs]
        assert sum(r["generated_count"] for r in results) == 2
        assert sum(len(r.get("claimed_elsewhere", [])) + r.get("existing_count", 0) for r in results) == 2
    assert rows(home, "SELECT count(*) AS n FROM locks WHERE name LIKE 'image:%'")[0]["n"] == 0  # claims released
