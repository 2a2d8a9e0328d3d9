"""Draw docs/img/dashboard-fleet.png: the fleet dashboard's main panels, from its own queries.

No Grafana here: the script does what the dashboard test does (a simulated day in a real
influxd, each panel's InfluxQL with the variables substituted) and draws the answers with
Pillow, in the dashboard's layout and colours, so the docs show what partners will see.

    PYTHONPATH=. .venv/bin/python scripts/dashboard_picture.py [--out docs/img/dashboard-fleet.png]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont

from klupa.influx import Server, setup
from klupa.services import Influx1
from testkit.fleet_day import default_sites, interpolate, simulate_day
from testkit.services import need_program

REPO = Path(__file__).resolve().parent.parent
SARAJEVO = ZoneInfo("Europe/Sarajevo")
BG, PANEL, GRID, TEXT, DIM = "#111217", "#181b1f", "#2c3235", "#d8d9da", "#8e8e8e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a", "#c4162a", "#1f60c4"]  # fmt: skip


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def soc_colour(soc: float) -> str:
    return "#f2495c" if soc < 15 else "#ff9830" if soc < 40 else "#73bf69"


def frame(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str) -> None:
    d.rounded_rectangle(box, 4, fill=PANEL, outline=GRID)
    d.text((box[0] + 10, box[1] + 6), title, fill=TEXT, font=font(14))


def stat(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str, value: str) -> None:
    frame(d, box, title)
    x = (box[0] + box[2]) // 2
    d.text((x, (box[1] + box[3]) // 2 + 8), value, fill="#73bf69", font=font(34), anchor="mm")


def plot(
    d: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    lines: dict[str, list[tuple[int, float]]],
    t0: int,
    t1: int,
    top_value: float | None = None,
) -> None:
    frame(d, box, title)
    rows = (len(lines) + 5) // 6
    left, top, right, bottom = box[0] + 44, box[1] + 34, box[2] - 12, box[3] - 22 - 12 * rows
    values = [v for pts in lines.values() for _, v in pts]
    lo, hi = min(0.0, min(values)), top_value or max(values) * 1.05 or 1.0
    for i in range(5):
        y = bottom - (bottom - top) * i / 4
        d.line((left, y, right, y), fill=GRID)
        d.text((left - 6, y), f"{lo + (hi - lo) * i / 4:.0f}", fill=DIM, font=font(10), anchor="rm")
    for h in range(0, 25, 6):
        x = left + (right - left) * h / 24
        stamp = datetime.fromtimestamp(t0 + h * 3600, SARAJEVO).strftime("%H:%M")
        d.text((x, bottom + 4), stamp, fill=DIM, font=font(10), anchor="mt")
    for i, (name, pts) in enumerate(sorted(lines.items())):
        xy = [
            (
                left + (right - left) * (t - t0) / (t1 - t0),
                bottom - (bottom - top) * (v - lo) / (hi - lo),
            )
            for t, v in pts
        ]
        colour = PALETTE[i % len(PALETTE)]
        if len(xy) > 1:
            d.line(xy, fill=colour, width=2)
        lx = box[0] + 10 + (i % 6) * ((box[2] - box[0] - 20) // 6)
        ly = bottom + 20 + (i // 6) * 12
        d.rectangle((lx, ly + 3, lx + 8, ly + 7), fill=colour)
        d.text((lx + 12, ly), name, fill=DIM, font=font(10))


def draw_map(
    d: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    sites: list[dict[str, Any]],
    soc: dict[str, float],
    online: dict[str, bool],
) -> None:
    frame(d, box, "Benches")
    lats = [s["lat"] for s in sites]
    lons = [s["lon"] for s in sites]
    pad = 0.35
    la0, la1, lo0, lo1 = min(lats) - pad, max(lats) + pad, min(lons) - pad, max(lons) + pad
    left, top, right, bottom = box[0] + 20, box[1] + 34, box[2] - 20, box[3] - 16
    for g in range(int(lo0) + 1, int(lo1) + 1):
        x = left + (right - left) * (g - lo0) / (lo1 - lo0)
        d.line((x, top, x, bottom), fill=GRID)
        d.text((x + 2, bottom - 12), f"{g}°E", fill=DIM, font=font(9))
    for g in range(int(la0) + 1, int(la1) + 1):
        y = bottom - (bottom - top) * (g - la0) / (la1 - la0)
        d.line((left, y, right, y), fill=GRID)
        d.text((left + 2, y + 2), f"{g}°N", fill=DIM, font=font(9))
    for s in sites:
        # a close neighbour to the right: write this label on the left
        crowded = any(
            0 < o["lon"] - s["lon"] < 0.3 and abs(o["lat"] - s["lat"]) < 0.15 for o in sites
        )
        x = left + (right - left) * (s["lon"] - lo0) / (lo1 - lo0)
        y = bottom - (bottom - top) * (s["lat"] - la0) / (la1 - la0)
        b = s["bench"]
        colour = soc_colour(soc.get(b, 0.0)) if online.get(b) else "#555"
        d.ellipse((x - 7, y - 7, x + 7, y + 7), fill=colour, outline="#000")
        label = f"{b}  {soc.get(b, 0):.0f} %" + ("" if online.get(b) else "  offline")
        if crowded:
            d.text((x - 10, y), label, fill=TEXT, font=font(11), anchor="rm")
        else:
            d.text((x + 10, y), label, fill=TEXT, font=font(11), anchor="lm")


def series(influx: Influx1, query: str) -> list[dict[str, Any]]:
    body = influx.query(query, "benches")
    out: list[dict[str, Any]] = body["results"][0].get("series", [])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "dashboard-fleet.png")
    args = parser.parse_args()
    board = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "fleet.json").read_text())
    panels = {p["title"]: p for p in board["panels"]}
    with tempfile.TemporaryDirectory() as tmp:
        influx = Influx1(binary=need_program("influxd"), workdir=Path(tmp)).start()
        try:
            setup(Server(influx.url), "benches")
            day = simulate_day(influx.url, default_sites(Path(tmp)), int(time.time()) // 60 * 60)
            ms = (day.start * 1000, day.end * 1000)
            values = {"municipality": sorted({s.municipality for s in day.sites})}

            def q(title: str, ref: str = "A") -> list[dict[str, Any]]:
                target = next(t for t in panels[title]["targets"] if t["refId"] == ref)
                return series(influx, interpolate(target["query"], values, *ms))

            soc = {s["tags"]["bench"]: s["values"][0][1] for s in q("Benches", "A")}
            online = {s["tags"]["bench"]: s["values"][0][1] for s in q("Benches", "B")}
            stats = {
                t: q(t)[0]["values"][0][1]
                for t in (
                    "Benches online now",
                    "Charging sessions",
                    "Harvested",
                    "Delivered to phones",
                )
            }
            soc_lines = {
                s["tags"]["bench"]: [(v[0], v[1]) for v in s["values"] if v[1] is not None]
                for s in q("State of charge")
            }
            energy = {
                name: [(v[0], v[1]) for v in q("Energy harvested and delivered", ref)[0]["values"]]
                for name, ref in (("harvested", "A"), ("delivered", "B"))
            }
        finally:
            influx.kill()
    csv_rows = next(t for t in panels["Benches"]["targets"] if "csvContent" in t)["csvContent"]
    sites = []
    for line in csv_rows.splitlines()[1:]:
        bench, municipality, _, lat, lon = [c.strip('"') for c in line.split(",")]
        sites.append({"bench": bench, "lat": float(lat), "lon": float(lon)})

    img = Image.new("RGB", (1400, 860), BG)
    d = ImageDraw.Draw(img)
    d.text(
        (16, 12),
        "klupa: fleet   (a simulated day, all municipalities; Sarajevo time)",
        fill=TEXT,
        font=font(18),
    )
    draw_map(d, (12, 44, 700, 520), sites, soc, online)
    names = [("Benches online now", "{:.0f}"), ("Charging sessions", "{:.0f}"),
             ("Harvested", "{:.2f} kWh"), ("Delivered to phones", "{:.2f} kWh")]  # fmt: skip
    for i, (title, fmt) in enumerate(names):
        x, y = 712 + (i % 2) * 340, 44 + (i // 2) * 120
        value = stats[title] / (1000 if "kWh" in fmt else 1)
        stat(d, (x, y, x + 332, y + 112), title, fmt.format(value))
    t0, t1 = day.start, day.end
    energy_title = "Energy harvested and delivered (Wh per 5 min)"
    plot(d, (712, 288, 1388, 520), energy_title, energy, t0, t1)
    plot(d, (12, 532, 1388, 848), "State of charge (%)", soc_lines, t0, t1, 100.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
