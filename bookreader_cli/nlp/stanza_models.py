"""Finding Stanza models on disk without importing Stanza or torch (cheap enough for `health`).

A directory is a standard Stanza resources dir: `<dir>/<lang>/<processor>/<package>.pt`, with word
vectors in `<dir>/<lang>/pretrain/` and, when Stanza downloaded it, `<dir>/resources.json` saying which
package is the default and what each depends on. Our own trained models use the same layout (package
"bookreader"), so a directory downloaded elsewhere and one trained here load through the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

PROCESSORS = ("tokenize", "pos", "lemma", "depparse", "ner")
REQUIRED = ("pos", "lemma", "depparse")  # tokenize is optional (we pass our own tokens); ner too
NEEDS_PRETRAIN = ("pos", "depparse", "ner")
OUR_PACKAGE = "bookreader"
# Small models built by scripts/train_stanza.py and shipped in the package, used when the configured
# directory holds none, so Stanza votes out of the box.
BUNDLED_DIR = Path(__file__).with_name("stanza_bundled")
TRAIN_HINT = "set stanza_dir in config or run `bookreader models train-stanza`"


@dataclass
class StanzaModels:
    """Everything needed to build a Pipeline: files per processor and what they depend on."""

    root: Path  # the resources dir (parent of <lang>/)
    lang: str
    models: dict[str, Path]  # processor -> model file
    packages: dict[str, str]  # processor -> package name (the file stem)
    dependencies: dict[str, dict[str, Path]] = field(default_factory=dict)  # processor -> {"pretrain": path, ...}
    resources_json: Path | None = None
    manifest: dict | None = None  # bookreader-train.json when we trained them

    @property
    def source(self) -> str:
        if self.root.resolve() == BUNDLED_DIR.resolve():
            return f"bundled {self.manifest.get('size', '?') if self.manifest else ''} models in {self.root}"
        if self.manifest:
            return f"trained locally at {self.root} ({self.manifest.get('size', '?')} size)"
        return f"Stanza models in {self.root}"

    def pipeline_kwargs(self) -> dict:
        """Keyword arguments for stanza.Pipeline naming every model file explicitly."""
        kwargs: dict = {"processors": dict(self.packages)}
        for proc, path in self.models.items():
            kwargs[f"{proc}_model_path"] = str(path)
            for dep, dep_path in self.dependencies.get(proc, {}).items():
                kwargs[f"{proc}_{dep}_path"] = str(dep_path)
        return kwargs

    def size_bytes(self) -> int:
        files = set(self.models.values()) | {p for deps in self.dependencies.values() for p in deps.values()}
        return sum(p.stat().st_size for p in files if p.exists())


def _lang_dir(root: Path, lang: str) -> tuple[Path, Path] | None:
    """Accept either the resources dir or its <lang> subdirectory."""
    if (root / lang).is_dir():
        return root, root / lang
    if root.name == lang and any((root / p).is_dir() for p in PROCESSORS):
        return root.parent, root
    return None


def _read_resources(root: Path, lang: str) -> tuple[Path | None, dict]:
    path = root / "resources.json"
    if not path.is_file():
        return None, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path, {}
    lang_res = data.get(lang, {}) if isinstance(data, dict) else {}
    while isinstance(lang_res, dict) and "alias" in lang_res:  # e.g. a language code alias
        lang_res = data.get(lang_res["alias"], {})
    return path, lang_res if isinstance(lang_res, dict) else {}


def _pick(files: list[Path], preferred: list[str]) -> Path | None:
    by_stem = {f.stem: f for f in files}
    for name in preferred:
        if name and name in by_stem:
            return by_stem[name]
    return min(files) if files else None


def find_models(root: Path | str | None, lang: str = "ru") -> tuple[StanzaModels | None, str]:
    """(models, "") when `root` holds a usable set for `lang`; (None, why not) otherwise."""
    if not root:
        return None, f"no Stanza models: {TRAIN_HINT}"
    root = Path(root).expanduser()
    if not root.is_dir():
        return None, f"no Stanza models: {root} does not exist; {TRAIN_HINT}"
    found = _lang_dir(root, lang)
    if found is None:
        return None, f"no Stanza models for {lang!r} in {root}: {TRAIN_HINT}"
    root, lang_dir = found
    resources_path, lang_res = _read_resources(root, lang)
    defaults = lang_res.get("default_processors", {}) if isinstance(lang_res.get("default_processors"), dict) else {}

    models: dict[str, Path] = {}
    packages: dict[str, str] = {}
    for proc in PROCESSORS:
        files = [p for p in (lang_dir / proc).glob("*.pt") if p.is_file()] if (lang_dir / proc).is_dir() else []
        chosen = _pick(files, [OUR_PACKAGE, str(defaults.get(proc, ""))])
        if chosen is not None:
            models[proc], packages[proc] = chosen, chosen.stem
    missing = [p for p in REQUIRED if p not in models]
    if missing:
        return None, f"no Stanza models: {lang_dir} lacks {', '.join(missing)} (*.pt); {TRAIN_HINT}"

    pretrains = sorted((lang_dir / "pretrain").glob("*.pt")) if (lang_dir / "pretrain").is_dir() else []
    default_pretrain = _pick(
        pretrains,
        [
            OUR_PACKAGE,
            str(lang_res.get("default_dependencies", {}).get("pretrain", ""))
            if isinstance(lang_res.get("default_dependencies"), dict)
            else "",
        ],
    )
    dependencies: dict[str, dict[str, Path]] = {}
    for proc, package in packages.items():
        deps: dict[str, Path] = {}
        declared = lang_res.get(proc, {}).get(package, {}) if isinstance(lang_res.get(proc), dict) else {}
        for dep in declared.get("dependencies", []) if isinstance(declared, dict) else []:
            if isinstance(dep, dict) and dep.get("model") and dep.get("package"):
                deps[dep["model"]] = lang_dir / dep["model"] / f"{dep['package']}.pt"
        if proc in NEEDS_PRETRAIN and "pretrain" not in deps and default_pretrain is not None:
            deps["pretrain"] = default_pretrain
        absent = [str(p) for p in deps.values() if not p.is_file()]
        if absent:
            if proc in REQUIRED:
                return None, f"Stanza {proc} model needs missing file(s): {', '.join(absent)}"
            del models[proc], packages[proc]  # an optional processor we cannot run is left out
            continue
        if proc in NEEDS_PRETRAIN and "pretrain" not in deps and proc in REQUIRED:
            return None, f"Stanza {proc} model needs word vectors: no {lang_dir / 'pretrain'}/*.pt"
        dependencies[proc] = deps

    manifest = None
    manifest_path = lang_dir / "bookreader-train.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
    return StanzaModels(root, lang, models, packages, dependencies, resources_path, manifest), ""


def resolve_models(configured: Path | str | None, explicit: bool, lang: str = "ru") -> tuple[StanzaModels | None, str]:
    """The models to use: the configured directory; when it was only the default location
    (<home>/models/stanza, not set by the user) and holds none, the bundled ones."""
    models, why = find_models(configured, lang)
    if models is not None or explicit:
        return models, why
    bundled, _ = find_models(BUNDLED_DIR, lang)
    return (bundled, "") if bundled is not None else (None, why)
