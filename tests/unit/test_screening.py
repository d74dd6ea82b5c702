"""libs.screening: name keys, the name index and avatar fingerprints."""

from __future__ import annotations

import io
import random
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opencc import OpenCC
from PIL import Image, ImageDraw, ImageFilter
from pypinyin import Style, lazy_pinyin
from rapidfuzz import fuzz

from libs.screening import (
    Affixes,
    InvalidImageError,
    LogoIndex,
    NameIndex,
    aggressive_key,
    avatar_fingerprint,
    normalise,
    phash_distance,
    pinyin_key,
)
from libs.screening.fuzzy import bigrams, max_destroyed_bigrams
from libs.screening.normalise import syllables_of_normalised, to_simplified

# the package re-exports the function normalise, which hides the module of that name
normalise_module = sys.modules["libs.screening.normalise"]

CJK = "人民日报日報中华共和国外交部上海北京银行重庆长乐行会乾燥頭髮一目瞭然覆藉沈阳公司科技"
SEPARATORS = [" ", "\u3000", "·", ".", "-", "_", "、", "，", "!", "\u200b", "\u200d", "\ufeff",
              "*", "|", "\t"]
name_alphabet = st.sampled_from(list(CJK + "abcXYZ019ＡＢ" + "аеорсх"))
names = st.text(name_alphabet, min_size=1, max_size=12)


# -- normalise -----------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [
    ("ＡＢＣ", "ABC"),                   # full width
    ("ｶﾀｶﾅ", "カタカナ"),                  # half width
    ("CCTV新闻", "cctv新闻"),             # case
    ("人民·日报", "人民日报"),              # punctuation
    ("人 民 日 报", "人民日报"),            # spaces
    ("人民\u200b日\u200d报", "人民日报"),   # zero-width characters
    ("人民日報", "人民日报"),               # traditional
    ("頭髮", "头发"),
    ("乾燥", "干燥"),                      # a phrase only t2s's phrase table converts
    ("Аррlе", "apple"),                  # Cyrillic А, р, р, е
    ("ΑΡΡLΕ", "APPLE"),                  # Greek capitals
    ("Café", "cafe"),                    # diacritics
    ("𝐚𝐩𝐩𝐥𝐞", "apple"),                  # mathematical bold
    ("①②", "12"),
])
def test_names_a_reader_cannot_tell_apart_share_a_key(a, b):
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(("a", "b"), [
    ("人民日报", "人民时报"),
    ("乾隆", "干隆"),                      # 乾 is simplified in 乾隆: t2s leaves it
    ("12306", "l2306"),                  # digits stay digits in the plain key
])
def test_different_names_keep_different_keys(a, b):
    assert normalise(a) != normalise(b)


def test_aggressive_key_folds_lookalike_digits():
    assert aggressive_key("G00GLE") == aggressive_key("google") == "google"
    assert aggressive_key("1ive5how") == "liveshow"
    assert normalise("G00GLE") == "g00gle"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=30))
@example("Ꮁ")  # Cherokee, a look-alike of Greek γ, itself a look-alike of y (found by this test)
@example("薴")  # traditional for 苧, which simplifies on to 苎
def test_normalise_is_idempotent(text):
    once = normalise(text)
    assert normalise(once) == once


def test_normalise_is_idempotent_on_every_code_point():
    # the property above draws a few hundred strings; look-alike chains hide in single
    # code points, of which there are few enough to try every one
    unstable = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates are not characters
        once = normalise(chr(code))
        if normalise(once) != once:
            unstable.append(hex(code))
    assert unstable == []


@settings(max_examples=300, deadline=None)
@given(names, st.lists(st.tuples(st.integers(0, 12), st.sampled_from(SEPARATORS)), max_size=5))
def test_inserting_punctuation_or_whitespace_never_changes_the_key(name, inserts):
    spaced = name
    for position, separator in inserts:
        position = min(position, len(spaced))
        spaced = spaced[:position] + separator + spaced[position:]
    assert normalise(spaced) == normalise(name)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list(CJK + "發乾覆藉沈著麼於")), max_size=12))
def test_the_simplification_shortcut_agrees_with_opencc(text):
    assert to_simplified(text) == _opencc_t2s().convert(text)


def _opencc_t2s():
    if not hasattr(_opencc_t2s, "converter"):
        _opencc_t2s.converter = OpenCC("t2s")
    return _opencc_t2s.converter


# -- pinyin --------------------------------------------------------------------------------
def test_pinyin_key_is_shared_by_script_variants_and_latin_spelling():
    assert pinyin_key("人民日报") == pinyin_key("人民日報") == pinyin_key("Ren Min Ri Bao")
    assert pinyin_key("人民日报") == "renminribao"


def test_homophones_share_a_pinyin_key():
    assert pinyin_key("李明") == pinyin_key("黎明") == "liming"
    assert pinyin_key("重庆银行") == "chongqingyinhang"  # readings in context, not 重 zhong


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list(CJK + "的地得还乐都了着长行重和abc12")), max_size=15))
def test_syllables_are_exactly_lazy_pinyin(key):
    assert list(syllables_of_normalised(key)) == lazy_pinyin(key, style=Style.NORMAL)


# -- NameIndex.similar ---------------------------------------------------------------------
@pytest.fixture
def index() -> NameIndex:
    idx = NameIndex()
    idx.bulk_load([
        ("p-rmrb", "人民日报"),
        ("p-mfa", "中华人民共和国外交部"),
        ("p-apple", "Apple"),
        ("p-12306", "中国铁路12306"),
        ("p-liming", "黎明"),
        ("p-cctv", "CCTV新闻"),
    ])
    return idx


def kinds(matches) -> dict[str, str]:
    return {m.id: m.kind for m in matches}


def test_exact_name_is_an_exact_match(index):
    (match, *_) = index.similar("人民日报")
    assert (match.id, match.kind, match.score) == ("p-rmrb", "exact", 1.0)


@pytest.mark.parametrize("query", ["人民日報", "人民·日报", "人 民 日 报", "人民日报\u200b",
                                   "ｃｃｔｖ新闻"])
def test_variants_are_normalised_matches(index, query):
    found = kinds(index.similar(query))
    assert "normalised" in found.values()


def test_homoglyph_latin_name_is_a_normalised_match(index):
    assert kinds(index.similar("\u0410pple")) == {"p-apple": "normalised"}  # Cyrillic А


def test_lookalike_digits_match_with_a_lower_score(index):
    (match,) = index.similar("中国铁路l23O6")
    assert (match.id, match.kind, match.score) == ("p-12306", "normalised", 0.95)


def test_homophones_are_pinyin_matches(index):
    assert kinds(index.similar("李明")) == {"p-liming": "pinyin"}
    assert kinds(index.similar("renminribao")) == {"p-rmrb": "pinyin"}


def test_near_miss_is_a_fuzzy_match_above_threshold(index):
    (match,) = index.similar("中华人民共和国外贸部")  # one character substituted
    assert (match.id, match.kind) == ("p-mfa", "fuzzy")
    assert match.score == pytest.approx(0.9)


def test_clearly_different_names_do_not_match(index):
    assert index.similar("上海美食攻略") == []
    assert index.similar("人民时尚") == []
    assert index.similar("") == []


def test_threshold_and_limit(index):
    assert index.similar("中华人民共和国外贸部", threshold=0.95) == []
    assert index.similar("李明", threshold=0.95) == []  # a homophone scores 0.9
    index.bulk_load((f"dup-{i}", "人民日报") for i in range(30))
    assert len(index.similar("人民日报")) == 10
    assert len(index.similar("人民日报", limit=None)) == 31


def test_remove_forgets_the_name(index):
    index.remove("p-rmrb")
    index.remove("p-rmrb")  # a replayed removal is harmless
    assert index.similar("人民日报") == []
    assert index.contained_in("人民日报官方号") == []
    assert len(index) == 5 and "p-rmrb" not in index


def test_add_replaces_the_name_of_an_id_and_reuses_slots(index):
    index.add("p-rmrb", "光明日报")
    assert index.similar("人民日报") == []
    assert kinds(index.similar("光明日报")) == {"p-rmrb": "exact"}
    index.remove("p-mfa")
    index.add("x", "中华人民共和国外交部")
    assert kinds(index.similar("中华人民共和国外交部")) == {"x": "exact"}
    assert len(index) == 6


def test_names_with_nothing_visible_are_kept_but_never_match():
    idx = NameIndex()
    idx.add("blank", "\u200b · ")
    assert len(idx) == 1 and idx.similar("·") == [] and idx.contained_in("· ·") == []
    idx.remove("blank")
    assert len(idx) == 0


def test_fuzzy_candidates_miss_nothing_a_linear_scan_finds():
    """Wherever the bigram bound guarantees a shared bigram (it may not for short queries)."""
    rng = random.Random(5)
    alphabet = "人民日报中华共和国外交部上海北京"
    pool = ["".join(rng.choices(alphabet, k=rng.randint(2, 12))) for _ in range(3000)]
    idx = NameIndex(max_posting=10**9, max_candidates=10**9)
    idx.bulk_load((str(i), name) for i, name in enumerate(pool))
    for query in rng.sample(pool, 40) + ["".join(rng.choices(alphabet, k=8)) for _ in range(40)]:
        for threshold in (0.7, 0.85):
            if len(bigrams(query)) - max_destroyed_bigrams(len(query), threshold) < 1:
                continue  # e.g. 华部 at 0.7 matches 华人部: no bigram in common
            expected = {str(i) for i, name in enumerate(pool)
                        if fuzz.ratio(query, name) >= threshold * 100}
            got = {m.id for m in idx.similar(query, threshold=threshold, limit=None)}
            assert expected <= got, query


@pytest.mark.parametrize(("length", "destroyed"), [(2, 0), (3, 1), (4, 2), (6, 2), (10, 4)])
def test_bigram_bound(length, destroyed):
    assert max_destroyed_bigrams(length, 0.85) == destroyed


# -- NameIndex.contained_in ----------------------------------------------------------------
def test_protected_name_inside_a_longer_name(index):
    (match,) = index.contained_in("人民日报官方号")
    assert (match.id, match.kind) == ("p-rmrb", "contains")
    assert match.score == pytest.approx(4 / 7)


def test_contained_after_normalisation_and_in_a_description(index):
    text = "欢迎关注！本号转载自《人民·日報》与 CCTV 新闻，每日更新。"
    assert kinds(index.contained_in(text)) == {"p-rmrb": "contains", "p-cctv": "contains"}


def test_contained_by_sound(index):
    assert kinds(index.contained_in("人民日宝官方")) == {"p-rmrb": "contains_pinyin"}
    assert kinds(index.contained_in("黎明")) == {"p-liming": "contains"}
    assert kinds(index.contained_in("今天李明来了")) == {"p-liming": "contains_pinyin"}
    assert kinds(index.contained_in("关注renminribao官方")) == {"p-rmrb": "contains_pinyin"}
    assert kinds(index.contained_in("关注 Ren-Min 日報")) == {"p-rmrb": "contains_pinyin"}


def test_short_names_respect_min_length():
    idx = NameIndex()
    idx.bulk_load([("one", "报"), ("two", "日报")])
    assert kinds(idx.contained_in("人民日报")) == {"two": "contains"}
    assert idx.contained_in("人民日报", min_length=3) == []


# -- avatars -------------------------------------------------------------------------------
def logo(size: int = 256, colour=(200, 30, 30)) -> Image.Image:
    # asymmetric on purpose: a symmetric image has many DCT coefficients near zero, whose
    # bits in a perceptual hash flip with any rendering noise
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    s = size / 256
    for i in range(8):
        draw.rectangle((0, i * 32 * s, (40 + 24 * i) * s, (i + 1) * 32 * s),
                       fill=(30 * i, 90, 160))
    draw.ellipse((70 * s, 30 * s, 240 * s, 200 * s), fill=colour)
    draw.rectangle((120 * s, 80 * s, 170 * s, 230 * s), fill=(20, 20, 20))
    draw.polygon([(10 * s, 250 * s), (120 * s, 190 * s), (60 * s, 140 * s)], fill=(250, 200, 0))
    return image


def other_image(size: int = 256) -> Image.Image:
    image = Image.new("RGB", (size, size), "black")
    draw = ImageDraw.Draw(image)
    for x in range(0, size, 32):
        draw.rectangle((x, 0, x + 15, size), fill=(40, 160, 220))
    draw.line((0, size, size, 0), fill="yellow", width=20)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_rerendered_logo_is_near_and_unrelated_image_far():
    original = avatar_fingerprint(encode(logo()))
    rerender = avatar_fingerprint(encode(
        logo(230, colour=(185, 45, 40)).filter(ImageFilter.GaussianBlur(1)), "JPEG",
        quality=70))
    unrelated = avatar_fingerprint(encode(other_image()))
    assert len(original.sha256) == 64 and len(original.phash) == 16
    assert original.sha256 != rerender.sha256
    assert phash_distance(original.phash, rerender.phash) <= 6
    assert phash_distance(original.phash, unrelated.phash) >= 20


def test_transparent_background_hashes_like_white():
    rgba = logo().convert("RGBA")
    pixels = rgba.load()
    for x in range(rgba.width):
        for y in range(rgba.height):
            if pixels[x, y][:3] == (255, 255, 255):
                pixels[x, y] = (0, 0, 0, 0)
    assert phash_distance(avatar_fingerprint(encode(rgba)).phash,
                          avatar_fingerprint(encode(logo())).phash) <= 2


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
                                  encode(logo())[:200]])
def test_junk_bytes_are_invalid_images(data):
    with pytest.raises(InvalidImageError):
        avatar_fingerprint(data)


def test_oversized_images_are_refused():
    with pytest.raises(InvalidImageError, match="bytes"):
        avatar_fingerprint(b"\0" * (5 * 1024 * 1024 + 1))
    bomb = encode(Image.new("1", (6000, 6000)))  # 36 Mpx in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(InvalidImageError, match="pixels"):
        avatar_fingerprint(bomb)


def test_logo_index_returns_near_logos_nearest_first():
    logos = LogoIndex()
    base = avatar_fingerprint(encode(logo())).phash
    logos.add("red", base)
    logos.add("far", avatar_fingerprint(encode(other_image())).phash)
    flipped_bit = f"{int(base, 16) ^ 1:016x}"
    logos.add("near", flipped_bit)
    assert logos.nearest(base) == [("red", 0), ("near", 1)]
    logos.remove("red")
    assert logos.nearest(base, max_distance=0) == []
    assert len(logos) == 2
    with pytest.raises(ValueError):
        logos.nearest("not hex")


# -- Unicode confusables and affixes (A8.2, A8.3) ------------------------------------------
@pytest.mark.parametrize(("confusable", "plain"), [
    ("人⺠日报", "人民日报"),      # CJK radical ⺠ (a symbol, dropped before) for 民
    ("エ商银行", "工商银行"),      # katakana エ for 工
    ("⻢云", "马云"),              # radical ⻢ for 马
    ("力ロ油站", "力口油站"),      # katakana ロ for 口
    ("値得买", "值得买"),          # variant form with the same reading
])
def test_A8_3_unicode_confusable_cjk_characters_share_the_key(confusable, plain):
    assert normalise(confusable) == normalise(plain)


def test_confusables_keep_characters_that_read_differently_apart():
    # 土 and 士 look alike but read tu and shi: folding them would break 博士's pinyin key
    assert normalise("博士") != normalise("博土")
    assert pinyin_key("博士") == "boshi"
    assert normalise("二〇二〇") == "二〇二〇"  # 〇 reads ling; it is not the letter O
    assert normalise("l2306") != normalise("12306")  # ASCII is never folded here


def test_A8_3_closed_name_written_with_confusable_characters_is_a_normalised_match():
    idx = NameIndex()
    idx.bulk_load([("c-icbc", "工商银行"), ("c-rmrb", "人民日报")])
    (match,) = idx.similar("エ商银行")
    assert (match.id, match.kind) == ("c-icbc", "normalised")
    (match,) = idx.similar("人⺠日报")
    assert (match.id, match.kind) == ("c-rmrb", "normalised")


def test_A8_2_protected_name_with_confusable_characters_is_found_inside_a_name(index):
    assert kinds(index.contained_in("人⺠日报官方号")) == {"p-rmrb": "contains"}
    assert kinds(index.contained_in("关注CCТV新闻")) == {"p-cctv": "contains"}  # Cyrillic Т


@pytest.mark.parametrize("query", ["人民日报官方号", "人民日报说", "官方人民日报", "人民日報官方",
                                   "人民日报-官方账号"])
def test_A8_3_closed_name_with_affix_is_an_affix_match(index, query):
    matches = index.similar(query, affixes=Affixes())
    assert [(m.id, m.kind, m.score) for m in matches] == [("p-rmrb", "affix", 0.9)]


def test_affix_match_by_sound_and_for_short_names():
    idx = NameIndex()
    idx.bulk_load([("c-ali", "阿狸"), ("c-rmrb", "人民日报")])
    assert [(m.id, m.kind) for m in idx.similar("阿狸官方", affixes=Affixes())] == [
        ("c-ali", "affix")]
    (match,) = idx.similar("人民日宝官方", affixes=Affixes())  # homophone plus a label
    assert (match.id, match.kind, match.score) == ("c-rmrb", "affix", 0.85)
    assert idx.similar("阿狸官方", affixes=Affixes(), threshold=0.95) == []
    # a label alone is not a name, and words not in the list are not stripped
    assert idx.similar("阿狸猫", affixes=Affixes()) == []
    assert list(Affixes().cores("官方号")) == []


def test_closed_name_inside_a_longer_name_from_the_minimum_length():
    idx = NameIndex()
    idx.bulk_load([("c-long", "北京美食地图"), ("c-short", "美食")])
    matches = idx.similar("关注北京美食地图的朋友", contained_min_length=4)
    assert [(m.id, m.kind, m.score) for m in matches] == [("c-long", "contains", 0.85)]
    assert idx.similar("关注北京美食地图的朋友") == []
    assert idx.similar("关注北京美食地图的朋友", contained_min_length=4, threshold=0.9) == []
