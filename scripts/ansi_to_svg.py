#!/usr/bin/env python3
"""Renders terminal text with ANSI colour escapes (as `tmux capture-pane -e -p` prints it) as an SVG picture.

    tmux capture-pane -e -p -t demo | python3 scripts/ansi_to_svg.py --title "unmask demo" > docs/img/demo.svg

Understands SGR resets, bold/dim, the 16 basic colours, the 256-colour palette (38;5;N / 48;5;N) and 24-bit colour
(38;2;R;G;B); anything else is dropped. Dark background, monospace cells of 8.4 x 17 px.
"""
import argparse
import html
import re
import sys

BASIC = ["#1e1e1e", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
         "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"]
FG, BG = "#d4d4d4", "#1e1e1e"
CELL_W, CELL_H = 8.4, 17


def palette(n):
    """The xterm 256-colour palette: 16 basic, a 6x6x6 cube, 24 greys."""
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    g = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (g, g, g)


def apply_sgr(params, style):
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style.clear()
        elif c == 1:
            style["bold"] = True
        elif c == 2:
            style["dim"] = True
        elif c in (22,):
            style.pop("bold", None), style.pop("dim", None)
        elif 30 <= c <= 37 or 90 <= c <= 97:
            style["fg"] = BASIC[c - 30 if c < 90 else c - 82]
        elif 40 <= c <= 47 or 100 <= c <= 107:
            style["bg"] = BASIC[c - 40 if c < 100 else c - 92]
        elif c == 39:
            style.pop("fg", None)
        elif c == 49:
            style.pop("bg", None)
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style[key] = palette(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style[key] = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                i += 4
        i += 1


def parse(text):
    """Lines of (string, style) runs."""
    lines, style = [], {}
    for raw in text.rstrip("\n").split("\n"):
        runs, pos = [], 0
        for m in re.finditer(r"\x1b\[([0-9;]*)([A-Za-z])", raw):
            if m.start() > pos:
                runs.append((raw[pos:m.start()], dict(style)))
            if m.group(2) == "m":
                apply_sgr(m.group(1), style)
            pos = m.end()
        if pos < len(raw):
            runs.append((raw[pos:], dict(style)))
        lines.append(runs)
    return lines


def svg(lines, title):
    width = max([sum(len(s) for s, _ in runs) for runs in lines] + [40])
    top = 30 if title else 8
    w, h = int(width * CELL_W + 24), int(len(lines) * CELL_H + top + 12)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f'<rect width="100%" height="100%" rx="6" fill="{BG}"/>',
           '<style>text{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:14px;white-space:pre}</style>']
    if title:
        out.append(f'<text x="12" y="20" fill="#888888">{html.escape(title)}</text>')
    for row, runs in enumerate(lines):
        x, y = 12.0, top + (row + 1) * CELL_H - 4
        for s, st in runs:
            if "bg" in st:
                out.append(f'<rect x="{x:.1f}" y="{y - CELL_H + 4:.1f}" width="{len(s) * CELL_W:.1f}" '
                           f'height="{CELL_H}" fill="{st["bg"]}"/>')
            attrs = f'fill="{st.get("fg", FG)}"'
            if st.get("bold"):
                attrs += ' font-weight="bold"'
            if st.get("dim"):
                attrs += ' opacity="0.6"'
            body = s.strip(" ")
            if body:  # SVG collapses spaces at the ends of a text: place the text at its first non-space cell
                at = x + (len(s) - len(s.lstrip(" "))) * CELL_W
                out.append(f'<text x="{at:.1f}" y="{y:.1f}" {attrs} textLength="{len(body) * CELL_W:.1f}" '
                           f'lengthAdjust="spacingAndGlyphs">{html.escape(body)}</text>')
            x += len(s) * CELL_W
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    sys.stdout.write(svg(parse(sys.stdin.read()), args.title))


if __name__ == "__main__":
    main()
