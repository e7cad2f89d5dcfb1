"""Reading and comparing CFI strings as epub.js 0.3's EpubCFI does (parse, compare, collapse, toString)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bookreader_cli.errors import BadInput

# --- reading CFI strings (EpubCFI.parse) ------------------------------------------------------------------


@dataclass
class Step:
    type: str  # "element" | "text"
    index: int
    id: str | None = None


@dataclass
class Component:
    steps: list[Step | None]
    offset: int | None = None
    assertion: str | None = None


@dataclass
class ParsedCfi:
    spine_pos: int
    base: Component
    path: Component
    start: Component | None = None
    end: Component | None = None

    @property
    def is_range(self) -> bool:
        return self.start is not None

    def start_steps(self) -> tuple[list, int | None]:
        if self.start is not None:
            return self.path.steps + self.start.steps, self.start.offset
        return self.path.steps, self.path.offset

    def end_steps(self) -> tuple[list, int | None]:
        if self.end is not None:
            return self.path.steps + self.end.steps, self.end.offset
        return self.path.steps, self.path.offset


def _parse_int(text: str) -> int | None:
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def _parse_step(text: str) -> Step | None:
    m = re.search(r"\[(.*)\]", text)
    step_id = m.group(1) if m and m.group(1) else None
    num = _parse_int(text)
    if num is None:
        return None
    if num % 2 == 0:
        return Step("element", num // 2 - 1, step_id)
    return Step("text", (num - 1) // 2, step_id)


def _parse_component(text: str) -> Component:
    parts = text.split(":")
    steps = parts[0].split("/")
    if steps and steps[0] == "":
        steps = steps[1:]
    component = Component([_parse_step(s) for s in steps])
    if len(parts) > 1:
        m = re.search(r"\[(.*)\]", parts[1])
        if m and m.group(1):
            component.offset = _parse_int(parts[1].split("[")[0])
            component.assertion = m.group(1)
        else:
            component.offset = _parse_int(parts[1])
    return component


def parse_cfi(cfi: str) -> ParsedCfi:
    """EpubCFI.parse; raises BadInput for what epub.js would reject."""
    if not isinstance(cfi, str) or not (cfi.startswith("epubcfi(") and cfi.endswith(")")):
        raise BadInput(f"not an EPUB CFI (expected epubcfi(...)): {cfi!r}")
    inner = cfi[8:-1]
    pieces = inner.split("!")
    base = _parse_component(pieces[0])
    if len(base.steps) < 2 or base.steps[1] is None:
        raise BadInput(f"CFI has no spine step: {cfi}")
    path_text = pieces[1].split(",")[0] if len(pieces) > 1 and pieces[1] else ""
    path = _parse_component(path_text)
    parsed = ParsedCfi(spine_pos=base.steps[1].index, base=base, path=path)
    ranges = inner.split(",")
    if len(ranges) == 3:
        parsed.start = _parse_component(ranges[1])
        parsed.end = _parse_component(ranges[2])
    return parsed


def _segment(component: Component) -> str:
    parts = []
    for step in component.steps:
        if step is None:
            parts.append("")
            continue
        num = (step.index + 1) * 2 if step.type == "element" else 1 + 2 * step.index
        parts.append(f"{num}[{step.id}]" if step.id else str(num))
    text = "/" + "/".join(parts)
    if component.offset is not None:
        text += f":{component.offset}"
    if component.assertion is not None:
        text += f"[{component.assertion}]"
    return text


def cfi_to_string(cfi: ParsedCfi) -> str:
    text = f"epubcfi({_segment(cfi.base)}!{_segment(cfi.path)}"
    if cfi.start is not None and cfi.end is not None:
        text += f",{_segment(cfi.start)},{_segment(cfi.end)}"
    return text + ")"


def collapse(cfi: ParsedCfi, to_start: bool = False) -> ParsedCfi:
    """EpubCFI.collapse: a range becomes its start or end point."""
    if not cfi.is_range:
        return cfi
    part = cfi.start if to_start else cfi.end
    assert part is not None  # a range has both ends
    path = Component(cfi.path.steps + part.steps, part.offset, part.assertion)
    return ParsedCfi(cfi.spine_pos, cfi.base, path)


def _js_gt(a, b) -> bool:
    return (a or 0) > (b or 0)  # null compares as 0 in JavaScript relational operators


def compare_cfi(one: str | ParsedCfi, two: str | ParsedCfi) -> int:
    """EpubCFI.compare: -1 if `one` is earlier, 1 if later, 0 if equal."""
    a = parse_cfi(one) if isinstance(one, str) else one
    b = parse_cfi(two) if isinstance(two, str) else two
    if a.spine_pos != b.spine_pos:
        return 1 if a.spine_pos > b.spine_pos else -1
    steps_a, term_a = a.start_steps()
    steps_b, term_b = b.start_steps()
    for i, step in enumerate(steps_a):
        if step is None:
            return -1
        if i >= len(steps_b) or steps_b[i] is None:
            return 1
        if step.index != steps_b[i].index:
            return 1 if step.index > steps_b[i].index else -1
    if len(steps_a) < len(steps_b):
        return -1
    if _js_gt(term_a, term_b):
        return 1
    if _js_gt(term_b, term_a):
        return -1
    return 0
