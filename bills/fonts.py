"""A CJK font subset made once, to the glyphs bills can use.

The system Noto Sans CJK collection is ~20 MB per weight with ~65,000 glyphs; loading it and
subsetting it for every PDF is where much of the rendering time goes. We cut it once (per machine,
per source font) into two families:

* ``Wattbill Sans`` (regular and bold, ~1,000 glyphs): every character of our templates and message
  catalogues, of the label texts (``labels/``) and tariff names (``tariffs/catalog``), printable ASCII,
  Latin-1, digits, CJK and full-width punctuation: everything a bill prints except names/addresses;
* ``Wattbill Sans Ext`` (regular): the rest of the 3,755 level-1 hanzi of GB 2312, the common
  characters of names and addresses.

Two families rather than one keep the glyph ids of the fixed texts low: WeasyPrint's HarfBuzz
subsetting retains glyph ids up to the highest one used, so each PDF's embedded font carries an
index entry per id below it (with one 3,900-glyph font that was ~15 KB per font per PDF).

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


# Common in names and addresses, kept in the main family so that most bills never need the Ext one:
# the 100 commonest surnames, frequent given-name characters, address words, provinces and big cities.
COMMON_NAME_CHARS = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔向汤欧阳诸葛司马上官"
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国文辉玉萍红鹏飞宇浩然子轩梓涵欣怡晨佳琪思雨"
    "俊志新海波燕云峰宁丹凤亮成林斌琳晶颖婷雪梅春秋冬荣德福寿喜庆光永安康乐嘉慧智博睿涵瑶琦"
    "省市区县镇乡村街道路号楼栋幢单元室层弄巷里小区花园苑公寓大厦广场新村东南西北中前后左右"
    "一二三四五六七八九十百千甲乙丙丁期座门户组社居委会开发园工业科技"
    "北京天津上海重庆河北山西辽宁吉林黑龙江苏浙安徽福建湖南广东贵州云陕甘肃青台湾内蒙古西藏夏疆香港澳"
    "杭州京无锡波温绍兴嘉金丽衢舟合肥深圳成都武汉郑长沙济岛厦昆明阳沈大连哈尔滨太原石家庄呼和浩特"
    "银川乌鲁木齐拉萨西宁兰珠佛莞惠常扬镇徐淮盐泰宿芜湖蚌埠滁余姚慈溪义乌萧山滨江拱墅余杭临平富桐庐"
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


def _texts() -> list[Path]:
    """Files whose characters bills print: ours, and the label and tariff texts beside us."""
    paths = [p for folder in ("templates", "locale") for p in sorted((PACKAGE_DIR / folder).glob("*"))]
    root = PACKAGE_DIR.parent
    paths += sorted((root / "labels").glob("*.toml")) + sorted((root / "labels").glob("*.py"))
    paths += sorted((root / "tariffs" / "catalog").glob("*.toml"))
    return [p for p in paths if p.is_file()]


def _clean(chars: set[str]) -> str:
    return "".join(sorted(ch for ch in chars if (ch.isprintable() and ord(ch) < 0x10000) or ch == " "))


def charset_main() -> str:
    chars: set[str] = set()
    for path in _texts():
        chars.update(path.read_text(encoding="utf-8", errors="ignore"))
    chars.update(chr(c) for c in range(0x20, 0x7F))
    chars.update(chr(c) for c in range(0xA0, 0x180))  # Latin-1 + Latin Extended-A (pinyin, names)
    chars.update("ǎǐǒǔǖǘǚǜ")
    chars.update(_EXTRA)
    chars.update(COMMON_NAME_CHARS)
    chars.update(chr(c) for c in range(0x3000, 0x3040))  # CJK symbols and punctuation
    chars.update(chr(c) for c in range(0xFF01, 0xFF5F))  # full-width forms
    chars.update(chr(c) for c in range(0x2010, 0x2030))  # dashes, quotes, bullets
    return _clean(chars)


def charset_ext() -> str:
    main = set(charset_main())
    return _clean(set(_gb2312_level1()) - main)


def charset() -> str:
    """Every character the two families cover."""
    return _clean(set(charset_main()) | set(charset_ext()))


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
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


FAMILY_EXT = "Wattbill Sans Ext"
FACES = ((FAMILY, 400, "main"), (FAMILY, 700, "main"), (FAMILY_EXT, 400, "ext"))


def subset_fonts(directory: Path | None = None) -> dict[tuple[str, int], Path]:
    """(family, weight) -> path of the subset font, built on first use. Empty without source fonts."""
    directory = directory or cache_dir()
    texts = {"main": charset_main(), "ext": charset_ext()}
    out: dict[tuple[str, int], Path] = {}
    for family, weight, part in FACES:
        source = find_source(weight)
        if source is None:
            continue
        target = directory / f"wattbill-sans-{part}-{weight}-{_key(source, texts[part])}.otf"
        if not target.exists():
            build_subset(source, target, texts[part])
        out[(family, weight)] = target
    return out


def font_face_css(fonts: dict[tuple[str, int], Path]) -> str:
    return "".join(
        f"@font-face {{ font-family: '{family}'; font-weight: {w}; font-style: normal; "
        f"src: url('{p.resolve().as_uri()}'); }}\n"
        for (family, w), p in sorted(fonts.items())
    )


if __name__ == "__main__":  # pragma: no cover
    for face, path in subset_fonts().items():
        print(face, path, f"{path.stat().st_size / 1e6:.2f} MB")
