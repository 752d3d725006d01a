"""A flow drawn as SVG, in Python, with no system package: a layered layout of the state graph.

States are boxes laid out in layers (graph.layers: every forward edge points down); review
states show their quorum and roles, final states a double border. Edges carry the action, who
may take it and its condition in words ("金额 > 5000.00"); edges that go back up (a rejection,
a loop) are drawn as dashed curves at the side. The SVG uses presentation attributes only, no
`style`, so the page's Content-Security-Policy (`style-src 'self'`) lets it show inline.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from workflow.definitions import graph
from workflow.definitions.spec import FlowSpec, StateSpec
from workflow.roles import ROLES

NODE_W = 180
LINE_H = 16
PAD = 8
LAYER_GAP = 84
NODE_GAP = 28
MARGIN = 24
SIDE_STEP = 26
FONT = "'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif"
MAX_TEXT = 34  # characters of a line before it is cut with …

COLOURS = {
    "box": "#ffffff",
    "border": "#5b6b7b",
    "review": "#fff7e0",
    "review_border": "#b7791f",
    "final": "#e8f5e9",
    "final_border": "#2e7d32",
    "current": "#1e88e5",
    "current_fill": "#e3f2fd",
    "visited": "#90caf9",
    "edge": "#5b6b7b",
    "reject": "#c0392b",
    "muted": "#6b7280",
    "text": "#1f2933",
}

WORDS = {
    "zh": {
        "and": " 且 ",
        "or": " 或 ",
        "not": "非",
        "true": "是",
        "false": "否",
        "if": "当 ",
        "approve": "通过",
        "reject": "驳回",
        "review": "复核：{n} 人",
        "each": "（每个角色至少一人）",
        "final": "结束",
        "start": "开始",
    },
    "zh_Hant": {
        "and": " 且 ",
        "or": " 或 ",
        "not": "非",
        "true": "是",
        "false": "否",
        "if": "當 ",
        "approve": "通過",
        "reject": "駁回",
        "review": "複核：{n} 人",
        "each": "（每個角色至少一人）",
        "final": "結束",
        "start": "開始",
    },
    "en": {
        "and": " and ",
        "or": " or ",
        "not": "not ",
        "true": "yes",
        "false": "no",
        "if": "if ",
        "approve": "approve",
        "reject": "reject",
        "review": "review: {n} people",
        "each": " (each role)",
        "final": "end",
        "start": "start",
    },
}
OPERATORS = {"&&": "and", "||": "or", "==": "=", "!=": "≠", ">=": "≥", "<=": "≤"}
TOKEN_RE = re.compile(
    r"""decimal\(\s*(?P<dq>"[^"]*"|'[^']*')\s*\)|(?P<str>"[^"]*"|'[^']*')|"""
    r"""(?P<op>&&|\|\||==|!=|>=|<=)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>.)""",
    re.S,
)


def _words(lang: str) -> dict[str, str]:
    if lang.startswith("en"):
        return WORDS["en"]
    return WORDS["zh_Hant" if lang == "zh_Hant" else "zh"]


def guard_in_words(source: str, spec: FlowSpec, lang: str = "zh") -> str:
    """A guard expression with field names replaced by their labels and operators by words."""
    words = _words(lang)
    out: list[str] = []
    for match in TOKEN_RE.finditer(source):
        if match["dq"]:
            out.append(match["dq"][1:-1])
        elif match["str"]:
            out.append(match["str"])
        elif match["op"]:
            word = OPERATORS[match["op"]]
            out.append(words.get(word, f" {word} "))
        elif match["ident"]:
            name = match["ident"]
            spec_field = spec.field(name)
            if spec_field is not None:
                out.append(spec_field.label.get(lang))
            elif name in ("true", "false"):
                out.append(words[name])
            else:
                out.append(name)
        elif match["other"] == "!":
            out.append(words["not"])
        else:
            out.append(match["other"])
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _role_names(roles: Iterable[str], lang: str) -> str:
    return "/".join(ROLES[r].get(lang) if r in ROLES else r for r in roles)


def _width(text: str) -> int:
    """Rough text width at font-size 12: CJK glyphs are square, Latin about half as wide."""
    return sum(12 if ord(ch) > 0x2E80 else 7 for ch in text)


def _label_w(edge: _Edge) -> int:
    return max(_width(t) for t in edge.lines) * 11 // 12


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Edge:
    source: str
    dest: str
    lines: list[str] = field(default_factory=list)
    reject: bool = False


@dataclass
class _Box:
    state: StateSpec
    lines: list[tuple[str, str]]  # (text, kind)
    x: float = 0
    y: float = 0

    @property
    def h(self) -> float:
        return PAD * 2 + LINE_H * len(self.lines)


def _box_lines(state: StateSpec, lang: str) -> list[tuple[str, str]]:
    words = _words(lang)
    label = state.label.get(lang)
    lines = [(_cut(label), "title")]
    if label != state.name:
        lines.append((state.name, "name"))
    if state.review is not None:
        text = words["review"].format(n=state.review.required)
        if state.review.require_each_role:
            text += words["each"]
        lines.append((text, "review"))
        lines.append((_cut(_role_names(state.review.roles, lang)), "review"))
    if state.final:
        lines.append((words["final"], "final"))
    return lines


def _edges(spec: FlowSpec, lang: str) -> list[_Edge]:
    words = _words(lang)
    merged: dict[tuple[str, str, bool], _Edge] = {}

    def add(source: str, dest: str, text: str, reject: bool = False) -> None:
        edge = merged.setdefault((source, dest, reject), _Edge(source, dest, reject=reject))
        edge.lines.append(_cut(text, 40))

    for t in spec.transitions:
        text = f"{t.label.get(lang)} · {_role_names(t.roles, lang)}"
        add(t.source, t.dest, text)
        if t.when is not None:
            add(t.source, t.dest, words["if"] + guard_in_words(t.when.source, spec, lang))
    for state in spec.states:
        for route in state.on_approve:
            add(state.name, route.to, words["approve"])
            if route.when is not None:
                add(
                    state.name,
                    route.to,
                    words["if"] + guard_in_words(route.when.source, spec, lang),
                )
        if state.on_reject:
            add(state.name, state.on_reject, words["reject"], reject=True)
    return list(merged.values())


def render_svg(
    spec: FlowSpec,
    lang: str = "zh",
    current: str | None = None,
    path: Sequence[str] = (),
    title: str | None = None,
) -> str:
    """The flow as an SVG document; `current` and the states of `path` (oldest first) are
    highlighted, and so are the edges between consecutive states of `path`."""
    edges_map = graph.edges_of_spec(spec)
    layered = graph.layers(edges_map, spec.initial)
    boxes = {s.name: _Box(s, _box_lines(s, lang)) for s in spec.states}
    layer_of = {name: i for i, names in enumerate(layered) for name in names}
    # Place the layers: each centred on the widest one.
    widest = max(len(names) for names in layered)
    inner_w = widest * NODE_W + (widest - 1) * NODE_GAP
    y = MARGIN + LINE_H
    for names in layered:
        row_w = len(names) * NODE_W + (len(names) - 1) * NODE_GAP
        x = MARGIN + (inner_w - row_w) / 2
        for name in names:
            boxes[name].x, boxes[name].y = x, y
            x += NODE_W + NODE_GAP
        y += max(boxes[n].h for n in names) + LAYER_GAP
    edges = _edges(spec, lang)
    # Edges that go back up or sideways run down the right side; edges that skip a layer run
    # down the left side (so neither crosses a box or hides its label behind one).
    side = [e for e in edges if layer_of[e.dest] <= layer_of[e.source]]
    long = [e for e in edges if layer_of[e.dest] > layer_of[e.source] + 1]
    side_w = SIDE_STEP * (len(side) + 1) + 120 if side else 0
    left_w = (
        SIDE_STEP * (len(long) + 1) + max((_label_w(e) for e in long), default=0) if long else 0
    )
    for box in boxes.values():
        box.x += left_w
    width = MARGIN * 2 + left_w + inner_w + side_w
    height = y - LAYER_GAP + MARGIN
    walked = set(itertools.pairwise(path))
    visited = set(path)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" font-family="{FONT}" '
        f'font-size="12" class="flow-diagram">',
        f"<title>{escape(title or spec.title.get(lang))}</title>",
        "<defs>",
        *(
            f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
            f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>'
            for name, colour in (
                ("edge", COLOURS["edge"]),
                ("reject", COLOURS["reject"]),
                ("walked", COLOURS["current"]),
            )
        ),
        "</defs>",
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    labels: list[str] = []
    # Forward edges leave a box's bottom and enter the next box's top, spread along the edge.
    outgoing: dict[str, list[_Edge]] = {}
    incoming: dict[str, list[_Edge]] = {}
    for e in edges:
        if e not in side and e not in long:
            outgoing.setdefault(e.source, []).append(e)
            incoming.setdefault(e.dest, []).append(e)

    def spread(box: _Box, items: list[_Edge], edge: _Edge) -> float:
        index = items.index(edge)
        return box.x + NODE_W * (index + 1) / (len(items) + 1)

    for e in edges:
        src, dst = boxes[e.source], boxes[e.dest]
        on_path = (e.source, e.dest) in walked
        colour = COLOURS["current"] if on_path else COLOURS["reject" if e.reject else "edge"]
        marker = "walked" if on_path else ("reject" if e.reject else "edge")
        dash = ' stroke-dasharray="5 4"' if e.reject else ""
        stroke_w = 2.5 if on_path else 1.3
        if e in long:
            k = long.index(e) + 1
            bulge = MARGIN + left_w - SIDE_STEP * k
            x1, y1 = src.x, src.y + src.h / 2 + 4
            x2, y2 = dst.x, dst.y + dst.h / 2 - 4
            out.append(
                f'<path d="M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} '
                f'{x2 - 2:.1f},{y2:.1f}" fill="none" stroke="{colour}" stroke-width="{stroke_w}"'
                f'{dash} marker-end="url(#arrow-{marker})" class="edge" '
                f'data-from="{e.source}" data-to="{e.dest}"/>'
            )
            lx, ly = bulge + 20 - _label_w(e) / 2, (y1 + y2) / 2
            lx = max(lx, MARGIN + _label_w(e) / 2)
            ly -= (len(e.lines) - 1) * LINE_H / 2
        elif e not in side:
            x1, y1 = spread(src, outgoing[e.source], e), src.y + src.h
            x2, y2 = spread(dst, incoming[e.dest], e), dst.y
            out.append(
                f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + 40:.1f} {x2:.1f},{y2 - 40:.1f} '
                f'{x2:.1f},{y2 - 2:.1f}" fill="none" stroke="{colour}" stroke-width="{stroke_w}"'
                f'{dash} marker-end="url(#arrow-{marker})" class="edge" '
                f'data-from="{e.source}" data-to="{e.dest}"/>'
            )
            lx, ly = (x1 + x2) / 2, (y1 + y2) / 2 - (len(e.lines) - 1) * LINE_H / 2
        else:
            k = side.index(e) + 1
            bulge = MARGIN + left_w + inner_w + SIDE_STEP * k
            x1, y1 = src.x + NODE_W, src.y + src.h / 2 + 4
            x2, y2 = dst.x + NODE_W, dst.y + dst.h / 2 - 4
            out.append(
                f'<path d="M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} '
                f'{x2 + 2:.1f},{y2:.1f}" fill="none" stroke="{colour}" stroke-width="{stroke_w}"'
                f'{dash} marker-end="url(#arrow-{marker})" class="edge" '
                f'data-from="{e.source}" data-to="{e.dest}"/>'
            )
            lx, ly = bulge - 20 + _label_w(e) / 2, (y1 + y2) / 2
            ly -= (len(e.lines) - 1) * LINE_H / 2
        text_w = _label_w(e) + 8
        labels.append(
            f'<rect x="{lx - text_w / 2:.1f}" y="{ly - 12:.1f}" width="{text_w:.1f}" '
            f'height="{len(e.lines) * LINE_H + 2}" rx="3" fill="#ffffff" fill-opacity="0.9"/>'
        )
        for i, text in enumerate(e.lines):
            labels.append(
                f'<text x="{lx:.1f}" y="{ly + i * LINE_H:.1f}" text-anchor="middle" '
                f'fill="{colour}" font-size="11">{escape(text)}</text>'
            )
    out.extend(labels)

    words = _words(lang)
    for name, box in boxes.items():
        state = box.state
        fill, border = COLOURS["box"], COLOURS["border"]
        if state.review is not None:
            fill, border = COLOURS["review"], COLOURS["review_border"]
        elif state.final:
            fill, border = COLOURS["final"], COLOURS["final_border"]
        stroke_w = 1.5
        classes = ["state"]
        if name in visited:
            border, stroke_w = COLOURS["visited"], 2.5
            classes.append("visited")
        if name == current:
            fill, border, stroke_w = COLOURS["current_fill"], COLOURS["current"], 3.5
            classes.append("current")
        step = ' aria-current="step"' if name == current else ""
        out.append(f'<g class="{" ".join(classes)}" data-state="{name}"{step}>')
        out.append(
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{NODE_W}" height="{box.h:.1f}" '
            f'rx="8" fill="{fill}" stroke="{border}" stroke-width="{stroke_w}"/>'
        )
        if state.final:
            out.append(
                f'<rect x="{box.x + 3:.1f}" y="{box.y + 3:.1f}" width="{NODE_W - 6}" '
                f'height="{box.h - 6:.1f}" rx="6" fill="none" stroke="{border}"/>'
            )
        if name == spec.initial:
            out.append(
                f'<text x="{box.x:.1f}" y="{box.y - 5:.1f}" fill="{COLOURS["muted"]}" '
                f'font-size="11">▶ {escape(words["start"])}</text>'
            )
        for i, (text, kind) in enumerate(box.lines):
            weight = ' font-weight="bold"' if kind == "title" else ""
            colour = COLOURS["text"] if kind == "title" else COLOURS["muted"]
            if kind == "review":
                colour = COLOURS["review_border"]
            size = 13 if kind == "title" else 11
            out.append(
                f'<text x="{box.x + NODE_W / 2:.1f}" y="{box.y + PAD + 12 + i * LINE_H:.1f}" '
                f'text-anchor="middle" font-size="{size}" fill="{colour}"{weight}>'
                f"{escape(text)}</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
