"""A CJK font subset made once, to the glyphs bills can use.

The system Noto Sans CJK collection is ~20 MB per weight with ~65,000 glyphs; loading it and
subsetting it for every PDF is where most of the rendering time goes. We cut it once (per machine,
per source font) to:

* every character of the templates and message catalogues (so every fixed text is covered),
* printable ASCII, Latin-1 letters, digits, common CJK and full-width punctuation,
* the 3,755 level-1 hanzi of GB 2312 (the common characters of names and addresses).

The subset is written to a cache directory (``WATTBILL_FONT_CACHE``, else
``$XDG_CACHE_HOME/wattbill/fonts``, else ``~/.cache/wattbill/fonts``), named by a hash of the
character set and the source file, atomically (write + rename), so that concurrent workers are safe.
It is ~1.5 MB per weight, so it is not committed. A name or address with a rarer character still
renders: the CSS lists the full system font after the subset, and Pango falls back per character.

``python -m bills.fonts`` builds the subsets ahead of time (e.g. in a container build).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
SOURCE_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/noto-cjk"),
               Path("/usr/share/fonts/google-noto-cjk"))
SOURCE_FILES = {400: "NotoSansCJK-Regular.ttc", 700: "NotoSansCJK-Bold.ttc"}
FAMILY_IN_COLLECTION = "Noto Sans CJK SC"
FAMILY = "Wattbill Sans"

_EXTRA = (
    "，。、；：？！“”‘’（）《》〈〉【】「」『』…—～·￥¥℃×÷±≈≤≥→←↑↓–-•％＋－／："
    "０１２３４５６７８９ "
)


def _gb2312_level1() -> str:
    out = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                out.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return "".join(out)


def charset() -> str:
    chars: set[str] = set()
    for folder in ("templates", "locale"):
        for path in sorted((PACKAGE_DIR / folder).glob("*")):
            if path.is_file():
                chars.update(path.read_text(encoding="utf-8"))
    chars.update(chr(c) for c in range(0x20, 0x7F))
    chars.update(chr(c) for c in range(0xA0, 0x180))  # Latin-1 + Latin Extended-A (pinyin, names)
    chars.update("ǎǐǒǔǖǘǚǜ")
    chars.update(_EXTRA)
    chars.update(_gb2312_level1())
    return "".join(sorted(ch for ch in chars if ch.isprintable() or ch == " "))


def cache_dir() -> Path:
    env = os.environ.get("WATTBILL_FONT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wattbill" / "fonts"


def find_source(weight: int) -> Path | None:
    name = SOURCE_FILES[weight]
    for folder in SOURCE_DIRS:
        if (folder / name).exists():
            return folder / name
    return None


def _face_index(path: Path) -> int:
    from fontTools.ttLib import TTCollection

    if path.suffix.lower() != ".ttc":
        return -1
    coll = TTCollection(str(path), lazy=True)
    for i, font in enumerate(coll.fonts):
        if font["name"].getDebugName(1) == FAMILY_IN_COLLECTION:
            return i
    return 0


def _key(source: Path, text: str) -> str:
    st = source.stat()
    h = hashlib.sha256()
    h.update(f"{source}|{st.st_size}|{int(st.st_mtime)}|v1|".encode())
    h.update(text.encode("utf-8"))
    return h.hexdigest()[:16]


def build_subset(source: Path, target: Path, text: str) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    index = _face_index(source)
    font = TTFont(str(source), fontNumber=max(index, 0), lazy=False)
    opts = subset.Options()
    opts.layout_features = ["*"]
    opts.name_IDs = ["*"]
    opts.name_languages = ["*"]
    opts.notdef_outline = True
    opts.hinting = False
    opts.drop_tables += ["VORG", "vhea", "vmtx"]
    sub = subset.Subsetter(opts)
    sub.populate(text=text)
    sub.subset(font)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        font.save(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def subset_fonts(directory: Path | None = None) -> dict[int, Path]:
    """weight -> path of the subset font, built on first use. Empty if no source font exists."""
    directory = directory or cache_dir()
    text = charset()
    out: dict[int, Path] = {}
    for weight in SOURCE_FILES:
        source = find_source(weight)
        if source is None:
            continue
        target = directory / f"wattbill-sans-{weight}-{_key(source, text)}.otf"
        if not target.exists():
            build_subset(source, target, text)
        out[weight] = target
    return out


def font_face_css(fonts: dict[int, Path]) -> str:
    return "".join(
        f"@font-face {{ font-family: '{FAMILY}'; font-weight: {w}; font-style: normal; "
        f"src: url('{p.resolve().as_uri()}'); }}\n"
        for w, p in sorted(fonts.items())
    )


if __name__ == "__main__":  # pragma: no cover
    for weight, path in subset_fonts().items():
        print(weight, path, f"{path.stat().st_size / 1e6:.2f} MB")
