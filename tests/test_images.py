"""Image generation against a real HTTP server on 127.0.0.1 (tests/fake_image_api.py); nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_image_api import FakeImageAPI, make_image

from bookreader_cli.images import files
from bookreader_cli.images.client import (
    ImageClient,
    ImageFetchError,
    ImageOptions,
    ImageRequest,
    TokenBucket,
    build_url,
    parse_retry_after,
)
from bookreader_cli.images.files import TEMP_PREFIX, InvalidImage, validate_image, write_image_atomic
from bookreader_cli.images.generate import (
    allowed_count,
    generate_for_descriptions,
    plan_requests,
)
from bookreader_cli.images.prompts import build_prompt, description_seed
from bookreader_cli.images.statuses import IMAGE_ROW_COLUMNS

SECRET = "sk_test_S3CRET_value_123"


@pytest.fixture
def api():
    with FakeImageAPI() as server:
        yield server


def fast_options(api: FakeImageAPI, **overrides) -> ImageOptions:
    """Real timeouts and retries, but short waits so the suite stays fast."""
    values = {
        "base_url": api.base_url,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "total_timeout": 30.0,
        "max_retries": 2,
        "backoff_base": 0.02,
        "backoff_max": 0.1,
        "rate_per_second": 0,
        "concurrency": 4,
    }
    values.update(overrides)
    return ImageOptions(**values)


class RecordingSleep:
    """Records every wait the client asks for; really sleeps only when told to."""

    def __init__(self, real: bool = False):
        self.waits: list[float] = []
        self.real = real
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
        if self.real:
            import time

            time.sleep(seconds)


def desc(i: int, text: str, dtype: str = "location", **extra) -> dict:
    return dict({"id": i, "text": text, "type": dtype, "book_id": 1}, **extra)


def run(api, descriptions, tmp_path, sleep=None, **overrides):
    rows: list[dict] = []
    result = generate_for_descriptions(
        descriptions,
        fast_options(api, **overrides),
        tmp_path / "images",
        user="u1",
        on_result=rows.append,
        environ={},
        sleep=sleep or RecordingSleep(),
    )
    return result, rows


# ---- success -----------------------------------------------------------------------------------
def test_success_stores_file_named_by_content_hash(api, tmp_path):
    result, rows = run(api, [desc(7, "A dark forest with tall pines under a grey sky.")], tmp_path)
    assert result["requested_count"] == 1 and result["generated_count"] == 1 and result["failed_count"] == 0
    image = result["generated_images"][0]
    path = Path(image["image_path"])
    data = path.read_bytes()
    assert path.name == hashlib.sha256(data).hexdigest() + ".png"
    assert path.parent == tmp_path / "images"
    assert image["size_bytes"] == len(data) and image["attempts"] == 1
    assert image["image_url"].startswith(api.base_url + "/prompt/")
    assert image["seed"] == description_seed(7, "A dark forest with tall pines under a grey sky.")
    assert not [p for p in path.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]
    (req,) = api.requests
    assert req.query["nologo"] == ["true"] and req.query["enhance"] == ["false"]
    assert req.query["model"] == ["flux"] and req.query["seed"] == [str(image["seed"])]
    assert req.query["width"] == ["1024"] and req.query["height"] == ["768"]
    assert "dark forest" in req.prompt
    assert req.authorization is None  # no key configured: no header
    (row,) = rows
    assert set(row) == set(IMAGE_ROW_COLUMNS)
    assert row["status"] == "completed" and row["path"] == path.name and row["user"] == "u1"
    assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["book_id"] == 1
    assert json.loads(row["params"])["seed"] == image["seed"]
    assert result["total_time_seconds"] >= image["generation_time_seconds"] > 0


@pytest.mark.parametrize("fmt,ext", [("jpeg", ".jpg"), ("webp", ".webp")])
def test_extension_comes_from_magic_bytes(api, tmp_path, fmt, ext):
    result, _ = run(api, [desc(1, f"fake:{fmt} A castle on a hill")], tmp_path)
    assert Path(result["generated_images"][0]["image_path"]).suffix == ext


def test_rerun_asks_for_the_same_picture_and_reuses_the_file(api, tmp_path):
    d = desc(3, "Старый дом у реки, заросший плющом, с покосившимся крыльцом.")
    first, _ = run(api, [d], tmp_path)
    second, _ = run(api, [d], tmp_path)
    assert first["generated_images"][0]["image_url"] == second["generated_images"][0]["image_url"]
    assert first["generated_images"][0]["image_path"] == second["generated_images"][0]["image_path"]
    assert len(list((tmp_path / "images").iterdir())) == 1
    assert description_seed(3, d["text"]) != description_seed(4, d["text"])


def test_slow_response_within_timeout_succeeds_first_time(api, tmp_path):
    result, _ = run(api, [desc(1, "fake:slow@0.3 A slow lighthouse")], tmp_path, read_timeout=5.0)
    assert result["generated_count"] == 1 and len(api.requests) == 1


# ---- retries -----------------------------------------------------------------------------------
def test_429_retry_after_seconds_is_honoured(api, tmp_path):
    sleep = RecordingSleep(real=True)
    result, _ = run(api, [desc(1, "fake:429@0.3,png A busy market")], tmp_path, sleep=sleep)
    assert result["generated_count"] == 1
    first, second = api.requests
    assert (first.step, second.step) == ("429@0.3", "png")
    assert sleep.waits and sleep.waits[0] >= 0.3  # the server's wait won over the 0.02 s backoff
    assert second.at - first.at >= 0.3  # and it really happened between the two requests


def test_429_retry_after_http_date_is_honoured(api, tmp_path):
    sleep = RecordingSleep()
    result, _ = run(api, [desc(1, "fake:429date@3,png A harbour at dawn")], tmp_path, sleep=sleep)
    assert result["generated_count"] == 1 and len(api.requests) == 2
    assert 1.0 < sleep.waits[0] <= 3.0  # an HTTP-date has whole seconds: 3 s ahead is 2..3 s of waiting


def test_parse_retry_after():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None


@pytest.mark.parametrize("status", [400, 401, 402, 403])
def test_client_errors_are_not_retried(api, tmp_path, status):
    result, rows = run(api, [desc(1, f"fake:{status} A bridge")], tmp_path)
    assert len(api.requests) == 1
    assert result["failed_count"] == 1 and str(status) in result["failed"][0]["error"]
    assert rows[0]["status"] == "failed" and rows[0]["path"] is None


@pytest.mark.parametrize("spec", ["500,500,png", "524,png", "503,png"])
def test_server_errors_are_retried_then_succeed(api, tmp_path, spec):
    sleep = RecordingSleep()
    result, _ = run(api, [desc(1, f"fake:{spec} A windmill")], tmp_path, sleep=sleep)
    tries = spec.count(",") + 1
    assert result["generated_count"] == 1
    assert result["generated_images"][0]["attempts"] == tries == len(api.requests)
    assert len(sleep.waits) == tries - 1


def test_backoff_grows_exponentially_with_jitter(api):
    client = ImageClient(fast_options(api, backoff_base=1.0, backoff_max=100.0))
    try:
        for attempt in range(1, 6):
            full = 2 ** (attempt - 1)
            for _ in range(20):
                assert full / 2 <= client.backoff(attempt) <= full
    finally:
        client.close()


def test_persistent_500_gives_up_after_max_retries(api, tmp_path):
    result, _ = run(api, [desc(1, "fake:500 A tower")], tmp_path, max_retries=2)
    assert len(api.requests) == 3 and result["failed_count"] == 1
    assert "gave up after 3 attempts" in result["failed"][0]["error"]


def test_timeout_is_retried_and_reported(api, tmp_path):
    result, _ = run(api, [desc(1, "fake:hang A sleeping town")], tmp_path, read_timeout=0.3, max_retries=1)
    assert len(api.requests) == 2
    assert result["failed_count"] == 1 and "read timeout" in result["failed"][0]["error"]


def test_timeout_then_success(api, tmp_path):
    result, _ = run(api, [desc(1, "fake:hang,png A sleeping town")], tmp_path, read_timeout=1.0)
    assert result["generated_count"] == 1 and len(api.requests) == 2


def test_total_deadline_stops_retries(api, tmp_path):
    result, _ = run(
        api,
        [desc(1, "fake:hang A frozen lake")],
        tmp_path,
        read_timeout=5.0,
        total_timeout=0.4,
        max_retries=5,
        backoff_base=1.0,
    )
    assert len(api.requests) == 1
    assert result["failed_count"] == 1 and "deadline" in result["failed"][0]["error"]


# ---- a 200 that is not an image ----------------------------------------------------------------
@pytest.mark.parametrize(
    "step,why",
    [
        ("badmagic", "magic"),
        ("corrupt", "does not decode"),
        ("huge", "absurd dimensions"),
        ("octet", "not an image"),
    ],
)
def test_a_200_that_is_not_an_image_is_rejected_without_retry(api, tmp_path, step, why):
    result, _rows = run(api, [desc(1, f"fake:{step} A square")], tmp_path)
    assert len(api.requests) == 1 and result["failed_count"] == 1
    assert why in result["failed"][0]["error"]
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").iterdir())


def test_truncated_body_is_rejected_and_retried(api, tmp_path):
    result, _ = run(api, [desc(1, "fake:truncated A road")], tmp_path, max_retries=2)
    assert len(api.requests) == 3 and result["failed_count"] == 1
    assert "truncated" in result["failed"][0]["error"]
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").iterdir())


def test_truncated_then_good_body_succeeds(api, tmp_path):
    result, _ = run(api, [desc(1, "fake:truncated,png A road")], tmp_path)
    assert result["generated_count"] == 1 and len(api.requests) == 2


# ---- batches, concurrency, rate ----------------------------------------------------------------
def test_one_failure_never_stops_the_batch(api, tmp_path):
    ds = [desc(1, "A meadow"), desc(2, "fake:400 A mountain"), desc(3, "fake:html A river"), desc(4, "A village")]
    result, rows = run(api, ds, tmp_path)
    assert result["requested_count"] == 4 and result["generated_count"] == 2 and result["failed_count"] == 2
    assert [g["description_id"] for g in result["generated_images"]] == [1, 4]
    assert [f["description_id"] for f in result["failed"]] == [2, 3]
    assert sorted(r["description_id"] for r in rows) == [1, 2, 3, 4]


def test_a_failing_on_result_fails_only_that_image(api, tmp_path):
    def on_result(row):
        if row["description_id"] == 2:
            raise RuntimeError("database is locked")

    result = generate_for_descriptions(
        [desc(1, "A meadow"), desc(2, "A hill")],
        fast_options(api),
        tmp_path / "images",
        on_result=on_result,
        environ={},
    )
    assert result["generated_count"] == 1 and result["failed"][0]["description_id"] == 2
    assert "database is locked" in result["failed"][0]["error"]


def test_concurrency_bound_is_respected(api, tmp_path):
    # "gate@2" holds requests until two are in flight at once: a pool of 2 gets there, and never beyond
    ds = [desc(i, f"fake:gate@2 Scene number {i}") for i in range(6)]
    result, _ = run(api, ds, tmp_path, concurrency=2)
    assert result["generated_count"] == 6
    assert api.max_in_flight == 2


def test_concurrency_one_is_serial(api, tmp_path):
    ds = [desc(i, f"Scene number {i}") for i in range(4)]
    result, _ = run(api, ds, tmp_path, concurrency=1)
    assert result["generated_count"] == 4 and api.max_in_flight == 1


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_token_bucket_spaces_requests():
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=1.0, clock=clock, sleep=lambda s: None)
    waits = [bucket.acquire() for _ in range(4)]  # all at t=0: each reserves the next half-second slot
    assert waits == [0.0, 0.5, 1.0, 1.5]
    clock.now = 10.0  # idle time refills only up to the burst
    assert bucket.acquire() == 0.0 and bucket.acquire() == 0.5
    assert bucket.acquire(timeout=0.1) is None  # would have to wait 1.0 s
    assert TokenBucket(rate=0).acquire() == 0.0  # 0 = unlimited


def test_rate_limit_is_shared_between_threads(api, tmp_path):
    sleep = RecordingSleep()
    ds = [desc(i, f"Scene {i}") for i in range(5)]
    result, _ = run(api, ds, tmp_path, sleep=sleep, rate_per_second=0.5, concurrency=4)
    assert result["generated_count"] == 5
    # at 0.5 requests/s every request after the first must wait for a token (recorded, not slept)
    assert len([w for w in sleep.waits if w > 0]) >= 4


# ---- the API key -------------------------------------------------------------------------------
def test_api_key_is_sent_as_header_and_never_leaks(api, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    rows: list[dict] = []
    ds = [desc(1, "A garden"), desc(2, "fake:echo A palace"), desc(3, "fake:500,png A tower")]
    result = generate_for_descriptions(
        ds,
        fast_options(api),
        tmp_path / "images",
        user="u",
        on_result=rows.append,
        environ={"POLLINATIONS_API_KEY": SECRET},
        sleep=RecordingSleep(),
    )
    assert {r.authorization for r in api.requests} == {f"Bearer {SECRET}"}
    assert all(SECRET not in r.path for r in api.requests)
    assert result["generated_count"] == 2 and result["failed_count"] == 1
    assert "***" in result["failed"][0]["error"]  # the server echoed the key; we scrubbed it
    assert SECRET not in json.dumps(result, ensure_ascii=False)
    assert SECRET not in json.dumps(rows, ensure_ascii=False)
    assert caplog.records and SECRET not in caplog.text
    assert SECRET not in json.dumps(plan_requests(ds, fast_options(api)))


def test_api_key_env_name_is_configurable(api, tmp_path):
    generate_for_descriptions(
        [desc(1, "A garden")],
        fast_options(api, api_key_env="MY_KEY"),
        tmp_path,
        environ={"MY_KEY": SECRET, "POLLINATIONS_API_KEY": "other"},
    )
    assert api.requests[0].authorization == f"Bearer {SECRET}"


# ---- daily limit -------------------------------------------------------------------------------
def test_allowed_count():
    assert allowed_count(0, 500, 10) == 10  # off by default
    assert allowed_count(5, 0, 10) == 5
    assert allowed_count(5, 3, 10) == 2
    assert allowed_count(5, 9, 10) == 0


def test_daily_limit_is_enforced(api, tmp_path):
    ds = [desc(i, f"Scene {i}") for i in range(4)]
    rows: list[dict] = []
    result = generate_for_descriptions(
        ds,
        fast_options(api, daily_limit_per_user=3),
        tmp_path,
        user="reader",
        on_result=rows.append,
        used_today=2,
        environ={},
    )
    assert len(api.requests) == 1
    assert result["generated_count"] == 1 and result["failed_count"] == 3 and result["limited_count"] == 3
    assert all("daily limit" in f["error"] for f in result["failed"])
    assert len(rows) == 4


# ---- prompts and dry run -----------------------------------------------------------------------
def test_prompts_frame_the_description_by_type_and_keep_its_words():
    ru = build_prompt("— «Тёмный лес», — сказал он, глядя на  высокие сосны.", "location")
    assert ru.startswith("Book illustration of a place") and "Тёмный лес, — сказал он, глядя на высокие сосны" in ru
    en = build_prompt("A tall woman in a green cloak.", "character")
    assert "character portrait" in en and "A tall woman in a green cloak." in en
    assert build_prompt("x", "atmosphere") != build_prompt("x", "object") != build_prompt("x", None)


@pytest.mark.parametrize("cap", [60, 120, 400])
def test_prompt_length_is_capped(cap):
    text = "Бесконечная степь тянулась до самого горизонта, " * 40
    prompt = build_prompt(text, "location", max_chars=cap)
    assert len(prompt) <= cap and "степь" in prompt


def test_dry_run_plans_without_sending(api):
    ds = [desc(1, "A garden"), desc(2, "Сад", "object")]
    plans = plan_requests(ds, fast_options(api))
    assert api.requests == []
    assert [p["description_id"] for p in plans] == [1, 2]
    assert plans[1]["image_url"].startswith(api.base_url + "/prompt/")
    assert plans[1]["seed"] == description_seed(2, "Сад")


def test_url_encodes_the_whole_prompt():
    options = ImageOptions(base_url="https://example.invalid/")
    url = build_url(options, ImageRequest("a/b?c&d #e", 5, "flux", 10, 20))
    assert url.startswith("https://example.invalid/prompt/a%2Fb%3Fc%26d%20%23e?")
    assert "seed=5" in url and "nologo=true" in url


# ---- files -------------------------------------------------------------------------------------
def test_validate_image_rules():
    png = make_image("PNG")
    assert validate_image(png, "image/png; charset=binary").extension == ".png"
    with pytest.raises(InvalidImage, match="not an image"):
        validate_image(png, "text/html")
    with pytest.raises(InvalidImage, match="absurd"):
        validate_image(make_image("PNG", size=(8, 8)), "image/png")
    with pytest.raises(files.TruncatedImage, match="cut short"):  # a cut body is told apart: it is worth a retry
        validate_image(make_image("JPEG")[:300], "image/jpeg")


def test_atomic_write_reuses_identical_file(tmp_path):
    data = make_image("PNG", 1)
    info = validate_image(data, "image/png")
    first = write_image_atomic(tmp_path, data, info)
    mtime = first.stat().st_mtime_ns
    second = write_image_atomic(tmp_path, data, info)
    assert first == second and second.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_rows_fit_the_store_images_table(api, tmp_path):
    store_mod = pytest.importorskip("bookreader_cli.store")
    store = store_mod.Store(tmp_path / "db.sqlite")
    try:

        def save(row):
            with store.transaction():
                store.db["images"].insert(row)

        result = generate_for_descriptions(
            [desc(1, "A garden"), desc(2, "fake:400 A hall")],
            fast_options(api),
            tmp_path / "images",
            user="u9",
            on_result=save,
            environ={},
        )
        saved = list(store.db.query("SELECT * FROM images ORDER BY description_id"))
        assert [r["status"] for r in saved] == ["completed", "failed"]
        assert saved[0]["path"] == Path(result["generated_images"][0]["image_path"]).name
        assert saved[0]["user"] == "u9" and saved[1]["error"]
    finally:
        store.close()


def test_client_raises_clear_error(api):
    with ImageClient(fast_options(api)) as client, pytest.raises(ImageFetchError) as info:
        client.fetch(ImageRequest("fake:403 x", 1, "flux", 64, 48))
    assert info.value.status == 403 and info.value.attempts == 1 and not info.value.retryable


def test_daily_limit_counts_from_the_store(api, tmp_path):
    """The count the caller makes: the user's completed images in the last 24 hours (older ones do not count)."""
    import time

    from bookreader_cli.images.generate import daily_window_start

    store_mod = pytest.importorskip("bookreader_cli.store")
    store = store_mod.Store(tmp_path / "db.sqlite")
    try:
        now = time.time()
        for created, status, user in [
            (now - 60, "completed", "r"),
            (now - 120, "completed", "r"),
            (now - 2 * 86400, "completed", "r"),
            (now - 60, "failed", "r"),
            (now - 60, "completed", "someone else"),
        ]:
            store.db["images"].insert({"description_id": 1, "user": user, "status": status, "created_at": created})
        used = store.conn.execute(
            "SELECT count(*) FROM images WHERE user = ? AND status = 'completed' AND created_at >= ?",
            ["r", daily_window_start(now)],
        ).fetchone()[0]
        assert used == 2
        result = generate_for_descriptions(
            [desc(1, "A"), desc(2, "B")],
            fast_options(api, daily_limit_per_user=3),
            tmp_path / "images",
            user="r",
            used_today=used,
            environ={},
        )
        assert result["generated_count"] == 1 and len(api.requests) == 1
    finally:
        store.close()
