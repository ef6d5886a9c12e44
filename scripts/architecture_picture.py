#!/usr/bin/env python3
"""Draw the package's layers and the imports between its folders, from the code itself.

    python scripts/architecture_picture.py          # rewrite docs/architecture_layers.svg and
                                                    # the edge table in docs/architecture.md

The import graph and the ranks are those of the architecture test (tests/test_architecture.py,
the one home of the rules); tests/test_architecture.py also fails when the table in
docs/architecture.md no longer matches the code, so the picture cannot silently go stale.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_architecture as arch  # noqa: E402

DOC = ROOT / "docs" / "architecture.md"
PICTURE = ROOT / "docs" / "architecture_layers.svg"
BEGIN, END = "<!-- layers:begin (scripts/architecture_picture.py) -->", "<!-- layers:end -->"
NIPYPE = "nipype"


def area_edges() -> dict[str, set[str]]:
    """Folder-level imports: area -> the other areas (and ``nipype``) its modules import."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name in arch._modules():
        area = arch._area(name)
        if area == "bids_dfc":
            continue
        edges[area]  # noqa: B018 - every area is a node, even one that imports nothing
        for target, _, _ in arch._imports(name):
            dep = arch._own(target)
            if target.split(".")[0] == NIPYPE:
                edges[area].add(NIPYPE)
            elif dep and dep != "bids_dfc" and arch._area(dep) != area:
                edges[area].add(arch._area(dep))
    return dict(edges)


def edge_table(edges: dict[str, set[str]]) -> str:
    rows = ["| rank | folder | imports |", "|---|---|---|"]
    for area in sorted(edges, key=lambda a: (-arch.RANKS.get(a, 0), a)):
        deps = ", ".join(sorted(edges[area], key=lambda d: (-arch.RANKS.get(d, 9), d)))
        rows.append(f"| {arch.RANKS.get(area, '?')} | {area} | {deps or '-'} |")
    return "\n".join(rows)


def draw(edges: dict[str, set[str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    by_rank: dict[int, list[str]] = defaultdict(list)
    for area in sorted(edges):
        by_rank[arch.RANKS[area]].append(area)
    pos = {}
    for rank, areas in by_rank.items():
        for i, area in enumerate(areas):
            pos[area] = ((i + 1) / (len(areas) + 1), rank)
    pos[NIPYPE] = (0.93, 4.5)
    fig = Figure(figsize=(11, 7.5))
    ax = fig.subplots()
    ax.set_xlim(0, 1)
    ax.set_ylim(0.4, 6.6)
    ax.axis("off")
    for rank in by_rank:
        ax.axhspan(rank - 0.42, rank + 0.42, color="#f2f2f2" if rank % 2 else "#e6eef7",
                   zorder=0)
        ax.text(0.005, rank, f"rank {rank}", va="center", fontsize=10, color="#555")
    free = set(arch.NIPYPE_FREE)
    for area, (x, y) in pos.items():
        colour = "#fde2c4" if area == NIPYPE else "#d5f0d5" if area in free else "#ffffff"
        ax.text(x, y, area + ("/" if (arch.PACKAGE / area).is_dir() else ""), ha="center",
                va="center", fontsize=12, zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "fc": colour, "ec": "#333"})
    for area, deps in edges.items():
        for dep in deps:
            (x0, y0), (x1, y1) = pos[area], pos[dep]
            colour = "#d9822b" if dep == NIPYPE else "#4a6fa5"
            ax.add_patch(FancyArrowPatch((x0, y0 - 0.12), (x1, y1 + 0.12), zorder=2,
                                         arrowstyle="-|>", mutation_scale=10, color=colour,
                                         lw=0.8, alpha=0.7, connectionstyle="arc3,rad=0.08"))
    ax.set_title("bids_dfc: folders by rank, imports point down (green: never reach nipype)",
                 fontsize=13)
    fig.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")


def update_doc(table: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


def main() -> int:
    edges = area_edges()
    draw(edges, PICTURE)
    update_doc(edge_table(edges))
    print(f"wrote {PICTURE.relative_to(ROOT)} and the table in {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
