"""Settings: defaults, overlaid by an optional TOML file, overlaid by BOOKREADER_* environment variables.

Every path derives from `home` (BOOKREADER_HOME or --home; default the platform's user data dir), so one
variable moves a whole installation. The TOML file is `<home>/config.toml` unless BOOKREADER_CONFIG names one.
Environment overrides are `BOOKREADER_<SECTION>_<KEY>` (e.g. BOOKREADER_NLP_THRESHOLD=0.5).
Every value is checked at load, type and range (`_check_ranges`): a bad one is one BadInput line naming
the setting and where it came from, before any command runs.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bookreader_cli.errors import BadInput


@dataclass
class NlpSettings:
    mode: str = "ensemble"
    processors: list[str] = field(default_factory=lambda: ["spacy", "natasha", "stanza"])
    weights: dict[str, float] = field(default_factory=lambda: {"spacy": 1.0, "natasha": 1.2, "stanza": 0.8})
    threshold: float = 0.6
    workers: int = 2
    max_description_chars: int = 1000
    spacy_model: str = ""  # an installed pipeline name or a path; empty: use one if installed, else rules
    stanza_dir: str = ""  # a Stanza resources dir; empty: <home>/models/stanza, else the bundled models
    stanza_ner: bool = False  # Stanza's NER changed no vote on dev or Karamazov and costs ~14% of its time
    max_book_chars: int = 20_000_000  # `process` refuses a bigger book (see README, Contracts): hours of NLP
    # <home>/models, filled in by load_settings (not a config key): where `models train-stanza` puts models
    models_dir: str = field(default="", metadata={"derived": True})

    def stanza_path(self) -> Path | None:
        """The Stanza resources dir: nlp.stanza_dir if set, else <home>/models/stanza (None: neither known)."""
        if self.stanza_dir:
            return Path(self.stanza_dir).expanduser()
        return Path(self.models_dir) / "stanza" if self.models_dir else None


@dataclass
class ImageSettings:
    base_url: str = "https://image.pollinations.ai"
    path_prefix: str = "prompt"  # GET {base_url}/{path_prefix}/{prompt}; the newer gateway uses "image"
    model: str = "flux"
    width: int = 1024
    height: int = 768
    nologo: bool = True
    enhance: bool = False  # always ask the API to rewrite the prompt
    enhance_non_english: bool = True  # ask it only when the words are not English (see images/prompts.py)
    api_key_env: str = "POLLINATIONS_API_KEY"  # the key itself is never stored in settings
    concurrency: int = 4
    rate_per_second: float = 2.0  # shared by all request threads; 0 = unlimited
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    total_timeout: float = 180.0  # per image, across all attempts and waits
    max_retries: int = 3  # retries after the first attempt
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0  # a server asking for a longer wait than this is a failure, not a sleep
    min_px: int = 16  # an "image" smaller or larger than this is refused
    max_px: int = 8192
    max_bytes: int = 40 * 1024 * 1024
    daily_limit_per_user: int = 0  # 0: no limit
    prompt_max_chars: int = 400


@dataclass
class CacheSettings:
    ttl_seconds: int = 24 * 3600


@dataclass
class CfiSettings:
    count: int = 2000  # epub.js locations per book that `cfi` (without --chars/--count) and `process` aim for


@dataclass
class CelerySettings:
    broker_url: str = "redis://localhost:6379/0"
    result_backend: str = "redis://localhost:6379/0"
    soft_time_limit: int = 3300  # seconds; a task gets SoftTimeLimitExceeded, then is killed at time_limit
    time_limit: int = 3600
    visibility_timeout: int = 7200  # Redis: an unacked task whose worker vanished is redelivered after this
    max_redeliveries: int = 3  # a task delivered more often than 1 + this (worker crashes) fails instead
    socket_timeout: float = 10.0  # seconds any broker/result-backend read may take: a frozen Redis fails, not hangs


@dataclass
class HealthSettings:
    disk_degraded_mb: int = 1024  # free space under this on the home's disk: degraded
    disk_unhealthy_mb: int = 100  # under this: unhealthy (writes are about to fail)
    network_timeout: float = 3.0  # seconds for the image API check of `health --network`


@dataclass
class Settings:
    home: Path
    config_file: Path | None = None
    nlp: NlpSettings = field(default_factory=NlpSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    cfi: CfiSettings = field(default_factory=CfiSettings)
    celery: CelerySettings = field(default_factory=CelerySettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    cleanup_days: int = 30
    runs_keep_days: int = 90  # `cleanup` deletes finished task runs older than this
    # where each value that is not a default came from ("config file …" or the variable), for error lines
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def db_path(self) -> Path:
        return self.home / "bookreader.db"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def stanza_dir(self) -> Path:
        return Path(self.nlp.stanza_dir).expanduser() if self.nlp.stanza_dir else self.models_dir / "stanza"

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("sources")
        for section, cls in _SECTIONS.items():  # derived fields are not settings
            for f in fields(cls):
                if f.metadata.get("derived"):
                    d[section].pop(f.name, None)
        d["home"] = str(self.home)
        d["config_file"] = str(self.config_file) if self.config_file else None
        d["paths"] = {
            "database": str(self.db_path),
            "cache": str(self.cache_dir),
            "images": str(self.images_dir),
            "models": str(self.models_dir),
            "stanza": str(self.stanza_dir),
        }
        return d


_SECTIONS = {
    "nlp": NlpSettings,
    "images": ImageSettings,
    "cache": CacheSettings,
    "cfi": CfiSettings,
    "celery": CelerySettings,
    "health": HealthSettings,
}


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("bookreader", appauthor=False))


def load_settings(home: str | Path | None = None, environ: dict | None = None) -> Settings:
    """Effective settings: defaults < config file < environment < explicit `home`."""
    env = os.environ if environ is None else environ
    home_path = Path(home or env.get("BOOKREADER_HOME") or default_home()).expanduser().resolve()
    cfg_path = (
        Path(env["BOOKREADER_CONFIG"]).expanduser() if env.get("BOOKREADER_CONFIG") else home_path / "config.toml"
    )
    data: dict = {}
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise BadInput(f"config file {cfg_path}: {exc}") from None
    elif env.get("BOOKREADER_CONFIG"):
        raise BadInput(f"config file {cfg_path} does not exist")
    settings = Settings(home=home_path, config_file=cfg_path if cfg_path.exists() else None)
    origins = settings.sources
    for section, cls in _SECTIONS.items():
        group = getattr(settings, section)
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise BadInput(f"config file {cfg_path}: [{section}] must be a table")
        for f in _keys(cls):
            env_key = f"BOOKREADER_{section.upper()}_{f.name.upper()}"
            if f.name in values:
                setattr(group, f.name, _coerce(values[f.name], getattr(group, f.name), f"{section}.{f.name}"))
                origins[f"{section}.{f.name}"] = f"config file {cfg_path}"
            if env_key in env:
                setattr(group, f.name, _coerce_text(env[env_key], getattr(group, f.name), env_key))
                origins[f"{section}.{f.name}"] = env_key
        unknown = set(values) - {f.name for f in _keys(cls)}
        if unknown:
            raise BadInput(f"config file {cfg_path}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    for key in ("cleanup_days", "runs_keep_days"):  # the top-level keys
        if key in data:
            setattr(settings, key, _coerce(data[key], getattr(settings, key), key))
            origins[key] = f"config file {cfg_path}"
    settings.nlp.models_dir = str(settings.models_dir)
    _check_home(home_path)
    _check_ranges(settings)
    return settings


def _check_home(home: Path) -> None:
    """The home (or a directory above it) must not be a file: say so, instead of a FileExistsError later."""
    for path in (home, *home.parents):
        try:
            if not path.exists():
                continue
        except OSError:
            return
        if not path.is_dir():
            where = "" if path == home else f" ({path} is a file)"
            raise BadInput(
                f"home {home}: not a directory{where}; pass --home DIR (or BOOKREADER_HOME) naming a directory"
            )
        return


def _check_ranges(settings: Settings) -> None:
    """One BadInput line for the first setting outside its range (values that parse but make no sense).

    Names (NLP mode, processors) are checked by the engine that defines them: nlp.engine.check_settings,
    which every job's Context runs."""
    nlp, img, cel, hl = settings.nlp, settings.images, settings.celery, settings.health
    checks: list[tuple[bool, str, object, str]] = [
        (all(w >= 0 for w in nlp.weights.values()), "nlp.weights", nlp.weights, "weights >= 0"),
        (0.0 <= nlp.threshold <= 1.0, "nlp.threshold", nlp.threshold, "a share between 0 and 1"),
        (nlp.workers >= 1, "nlp.workers", nlp.workers, "at least 1"),
        (nlp.max_description_chars >= 1, "nlp.max_description_chars", nlp.max_description_chars, "at least 1"),
        (settings.cache.ttl_seconds >= 1, "cache.ttl_seconds", settings.cache.ttl_seconds, "at least 1 second"),
        (settings.cfi.count >= 1, "cfi.count", settings.cfi.count, "at least 1"),
        (1 <= img.min_px <= img.max_px, "images.min_px", img.min_px, f"between 1 and images.max_px ({img.max_px})"),
        (img.min_px <= img.width <= img.max_px, "images.width", img.width, f"between {img.min_px} and {img.max_px}"),
        (img.min_px <= img.height <= img.max_px, "images.height", img.height, f"between {img.min_px} and {img.max_px}"),
        (img.concurrency >= 1, "images.concurrency", img.concurrency, "at least 1"),
        (img.rate_per_second >= 0, "images.rate_per_second", img.rate_per_second, ">= 0 (0: unlimited)"),
        (img.connect_timeout > 0, "images.connect_timeout", img.connect_timeout, "> 0 seconds"),
        (img.read_timeout > 0, "images.read_timeout", img.read_timeout, "> 0 seconds"),
        (img.total_timeout > 0, "images.total_timeout", img.total_timeout, "> 0 seconds"),
        (img.max_retries >= 0, "images.max_retries", img.max_retries, ">= 0"),
        (img.backoff_base >= 0, "images.backoff_base", img.backoff_base, ">= 0 seconds"),
        (img.backoff_max >= img.backoff_base, "images.backoff_max", img.backoff_max, ">= images.backoff_base"),
        (img.max_retry_after >= 0, "images.max_retry_after", img.max_retry_after, ">= 0 seconds"),
        (img.max_bytes >= 1, "images.max_bytes", img.max_bytes, "at least 1"),
        (img.daily_limit_per_user >= 0, "images.daily_limit_per_user", img.daily_limit_per_user, ">= 0 (0: no limit)"),
        (img.prompt_max_chars >= 1, "images.prompt_max_chars", img.prompt_max_chars, "at least 1"),
        (cel.soft_time_limit >= 1, "celery.soft_time_limit", cel.soft_time_limit, "at least 1 second"),
        (cel.time_limit >= cel.soft_time_limit, "celery.time_limit", cel.time_limit, ">= celery.soft_time_limit"),
        (cel.visibility_timeout >= 1, "celery.visibility_timeout", cel.visibility_timeout, "at least 1 second"),
        (cel.max_redeliveries >= 0, "celery.max_redeliveries", cel.max_redeliveries, ">= 0"),
        (hl.disk_unhealthy_mb >= 0, "health.disk_unhealthy_mb", hl.disk_unhealthy_mb, ">= 0"),
        (hl.disk_degraded_mb >= 0, "health.disk_degraded_mb", hl.disk_degraded_mb, ">= 0"),
        (hl.network_timeout > 0, "health.network_timeout", hl.network_timeout, "> 0 seconds"),
        (settings.cleanup_days >= 0, "cleanup_days", settings.cleanup_days, ">= 0"),
        (settings.runs_keep_days >= 0, "runs_keep_days", settings.runs_keep_days, ">= 0"),
    ]
    for ok, name, value, expected in checks:
        if not ok:
            raise setting_error(settings, name, value, expected)


def setting_error(settings: Settings, name: str, value: object, expected: str) -> BadInput:
    """The one line for a setting outside its range, naming where the value came from."""
    source = next(
        (settings.sources[key] for key in (name, *_RELATED.get(name, ())) if key in settings.sources), "default"
    )
    return BadInput(f"setting {name} = {value!r} (from {source}): expected {expected}")


# A check that compares two settings may fail because of the other one.
_RELATED = {
    "images.min_px": ("images.max_px",),
    "images.width": ("images.min_px", "images.max_px"),
    "images.height": ("images.min_px", "images.max_px"),
    "images.backoff_max": ("images.backoff_base",),
    "celery.time_limit": ("celery.soft_time_limit",),
}


def _keys(cls) -> list:
    """The fields of a settings section that a config file or the environment may set."""
    return [f for f in fields(cls) if not f.metadata.get("derived")]


def _coerce(value, default, name: str):
    """Check a TOML value has the default's type (ints accepted for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise BadInput(f"setting {name}: expected {type(default).__name__}, got {value!r}")
    return value


def _coerce_text(text: str, default, name: str):
    """Parse an environment variable by the default's type; lists are comma-separated, dicts k=v,k=v."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, list):
            return [p.strip() for p in text.split(",") if p.strip()]
        if isinstance(default, dict):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in text.split(",") if p.strip())}
        return text
    except ValueError:
        raise BadInput(f"{name}={text!r}: expected {type(default).__name__}") from None
