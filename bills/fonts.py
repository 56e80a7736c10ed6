"""CJK font subsets made once, to the glyphs bills can use.

The system Noto Sans CJK collection is ~20 MB per weight with ~65,000 glyphs. Using it directly
costs at every PDF: WeasyPrint reads the font file, subsets it with HarfBuzz keeping glyph ids up to
the highest one used (so the embedded font carries an index entry for every id below it: ~150 KB
for a rare hanzi near the end of the collection), and Pango/fontconfig work on a huge face. We cut it
once (per machine, per source font) into small families:

* ``Wattbill Sans`` (regular and bold, ~1,300 glyphs): every character of our templates and message
  catalogues, of the label texts (``labels/``) and tariff names (``tariffs/catalog``), ASCII,
  Latin-1, CJK and full-width punctuation, and the commonest characters of names and addresses
  (surnames, given-name characters, place names): almost every bill needs nothing else;
* ``Wattbill Sans X01`` ... (regular, ~1,500 glyphs each): every other hanzi of the source font,
  in order of commonness (the rest of GB 2312 level 1, level 2, then the rest of the CJK Unified
  Ideographs, extension A and the compatibility ideographs), for names and addresses. A rare
  character costs a few KB (its chunk's index), not 150 KB.

Characters outside all of them (supplementary planes) fall back to the system font: the CSS lists it
after our families, and Pango falls back per character. Bold text with a chunk character is
synthesised from the regular face.

Subsets are made with HarfBuzz (``libharfbuzz-subset``, through cffi; seconds for all of them), or
fontTools if HarfBuzz is missing (slower). They are written to a cache directory
(setting ``font_cache``, ``WATTBILL_FONT_CACHE``, else ``$XDG_CACHE_HOME/wattbill/fonts``, else ``~/.cache/wattbill/fonts``),
named by a hash of the characters and the source file, atomically (write + rename), so that
concurrent workers are safe. Together ~20 MB, so they are not committed.

``python -m wattbill.bills.fonts`` builds them ahead of time (e.g. in a container build).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
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


def _clean(chars: set[str]) -> str:  # BMP only: the main family
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


def _gb2312_level2() -> str:
    out = []
    for hi in range(0xD8, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                out.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return "".join(out)


CHUNK = 1500


def ext_order() -> list[str]:
    """Every other CJK character, commonest first (without the main family's characters)."""
    seen = set(charset_main())
    out: list[str] = []
    blocks = [_gb2312_level1(), _gb2312_level2(),
              (chr(c) for c in range(0x4E00, 0xA000)),  # CJK Unified Ideographs
              (chr(c) for c in range(0x3400, 0x4DC0)),  # extension A
              (chr(c) for c in range(0xF900, 0xFB00))]  # compatibility ideographs
    for block in blocks:
        for ch in block:
            if ch not in seen:
                seen.add(ch)
                out.append(ch)
    return out


def _covered(source: Path) -> set[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(str(source), fontNumber=max(_face_index(source), 0), lazy=True)
    return set(font.getBestCmap())


def ext_chunks(source: Path) -> list[str]:
    """The chunks' characters: ``ext_order()``, then every other CJK-range character of the source
    font (radicals, enclosed forms, supplementary-plane ideographs such as 𠮷). A space in each, so
    that a run of rare characters keeps its spaces in the same font."""
    cmap = _covered(source)
    chars = [ch for ch in ext_order() if ord(ch) in cmap]
    seen = set(charset_main()) | set(chars)
    chars += [chr(c) for c in sorted(cmap) if c >= 0x2E80 and chr(c) not in seen and chr(c).isprintable()]
    return [" " + "".join(sorted(chars[i : i + CHUNK])) for i in range(0, len(chars), CHUNK)]


def charset() -> str:
    """The characters of the main family (the fixed texts and common names)."""
    return charset_main()


def cache_dir() -> Path:
    from wattbill.settings import get_settings

    configured = get_settings().font_cache
    if configured is not None:
        return configured
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
    h.update(f"{source}|{st.st_size}|{int(st.st_mtime)}|v2|".encode())
    h.update(text.encode("utf-8"))
    return h.hexdigest()[:16]


_HB: tuple | None = None


def _harfbuzz():
    """(ffi, libharfbuzz, libharfbuzz-subset) through cffi, or None."""
    global _HB
    if _HB is None:
        try:
            import cffi

            ffi = cffi.FFI()
            ffi.cdef("""
                typedef struct hb_blob_t hb_blob_t; typedef struct hb_face_t hb_face_t;
                typedef struct hb_set_t hb_set_t; typedef struct hb_subset_input_t hb_subset_input_t;
                hb_blob_t *hb_blob_create_from_file (const char *file_name);
                void hb_blob_destroy (hb_blob_t *blob);
                const char *hb_blob_get_data (hb_blob_t *blob, unsigned int *length);
                hb_face_t *hb_face_create (hb_blob_t *blob, unsigned int index);
                void hb_face_destroy (hb_face_t *face);
                hb_blob_t *hb_face_reference_blob (hb_face_t *face);
                unsigned int hb_face_get_glyph_count (const hb_face_t *face);
                void hb_set_add (hb_set_t *set, uint32_t codepoint);
                hb_subset_input_t *hb_subset_input_create_or_fail (void);
                void hb_subset_input_destroy (hb_subset_input_t *input);
                hb_set_t *hb_subset_input_unicode_set (hb_subset_input_t *input);
                hb_face_t *hb_subset_or_fail (hb_face_t *source, const hb_subset_input_t *input);
            """)
            hb = ffi.dlopen("libharfbuzz.so.0")
            hbs = ffi.dlopen("libharfbuzz-subset.so.0")
            _HB = (ffi, hb, hbs)
        except (ImportError, OSError):
            _HB = ()
    return _HB or None


def _hb_subset(source: Path, index: int, text: str) -> bytes | None:
    lib = _harfbuzz()
    if lib is None:
        return None
    ffi, hb, hbs = lib
    blob = hb.hb_blob_create_from_file(str(source).encode())
    face = hb.hb_face_create(blob, max(index, 0))
    inp = hbs.hb_subset_input_create_or_fail()
    try:
        if hb.hb_face_get_glyph_count(face) == 0 or inp == ffi.NULL:
            return None
        unicodes = hbs.hb_subset_input_unicode_set(inp)
        for ch in text:
            hb.hb_set_add(unicodes, ord(ch))
        sub = hbs.hb_subset_or_fail(face, inp)
        if sub == ffi.NULL:
            return None
        out_blob = hb.hb_face_reference_blob(sub)
        length = ffi.new("unsigned int *")
        data = ffi.buffer(hb.hb_blob_get_data(out_blob, length), length[0])[:]
        hb.hb_blob_destroy(out_blob)
        hb.hb_face_destroy(sub)
        return data or None
    finally:
        hbs.hb_subset_input_destroy(inp)
        hb.hb_face_destroy(face)
        hb.hb_blob_destroy(blob)


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_subset(source: Path, target: Path, text: str) -> Path:
    index = _face_index(source)
    data = _hb_subset(source, index, text)
    if data is not None:
        _write_atomic(target, data)
        return target
    return _fonttools_subset(source, index, target, text)


def _fonttools_subset(source: Path, index: int, target: Path, text: str) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTFont

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


SYSTEM_FALLBACK = "'Noto Sans CJK SC', 'Noto Sans CJK', sans-serif"

_MEMO: dict[Path, dict[tuple[str, int], Path]] = {}


def subset_fonts(directory: Path | None = None) -> dict[tuple[str, int], Path]:
    """(family, weight) -> subset font file, in font-family order (main family first), built on
    first use and cached. Empty without source fonts, or if they cannot be built anywhere
    (rendering then uses the system fonts: slower and bigger PDFs, but correct)."""
    candidates = [directory] if directory else [cache_dir(), Path(tempfile.gettempdir()) / f"wattbill-fonts-{os.getuid()}"]
    for i, folder in enumerate(candidates):
        try:
            return _subset_fonts(folder)
        except OSError as exc:
            log.warning("cannot build the font subsets in %s: %s", folder, exc)
            if i == len(candidates) - 1:
                return {}
    return {}


def _subset_fonts(directory: Path) -> dict[tuple[str, int], Path]:
    if directory in _MEMO and all(p.exists() for p in _MEMO[directory].values()):
        return _MEMO[directory]
    out: dict[tuple[str, int], Path] = {}
    main = charset_main()
    for weight in (400, 700):
        source = find_source(weight)
        if source is not None:
            target = directory / f"wattbill-sans-main-{weight}-{_key(source, main)}.otf"
            if not target.exists():
                build_subset(source, target, main)
            out[(FAMILY, weight)] = target
    source = find_source(400)
    if source is not None:
        index_file = directory / f"wattbill-sans-chunks-{_key(source, ''.join(ext_order()))}.txt"
        if index_file.exists():
            chunks = index_file.read_text("utf-8").split("\n")
        else:
            chunks = ext_chunks(source)
        for i, text in enumerate(chunks, 1):
            target = directory / f"wattbill-sans-x{i:02d}-400-{_key(source, text)}.otf"
            if not target.exists():
                build_subset(source, target, text)
            out[(f"{FAMILY} X{i:02d}", 400)] = target
        if not index_file.exists():
            _write_atomic(index_file, "\n".join(chunks).encode("utf-8"))
    _MEMO[directory] = out
    return out


def font_family(fonts: dict[tuple[str, int], Path]) -> str:
    """The CSS font-family list: our families in order, then the system font."""
    families = list(dict.fromkeys(family for family, _w in fonts))
    return ", ".join([*(f"'{f}'" for f in families), SYSTEM_FALLBACK])


def font_face_css(fonts: dict[tuple[str, int], Path]) -> str:
    return "".join(
        f"@font-face {{ font-family: '{family}'; font-weight: {w}; font-style: normal; "
        f"src: url('{p.resolve().as_uri()}'); }}\n"
        for (family, w), p in fonts.items()
    )


if __name__ == "__main__":  # pragma: no cover
    for face, path in subset_fonts().items():
        print(face, path, f"{path.stat().st_size / 1e6:.2f} MB")
