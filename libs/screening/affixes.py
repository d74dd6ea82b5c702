"""Labels that a name carries without changing whose name it is.

人民日报官方号, 人民日报说 and 官方人民日报 present themselves as 人民日报: the added words say
what kind of account it is, not who. A containment test would find 人民日报 inside them
too, but only for names long enough to be tested that way (a two-character name is inside
far too many others); stripping known labels also finds 阿狸 in 阿狸官方.

The list is policy (the services can pass their own); :data:`DEFAULT_AFFIXES` are the
labels named in the A8.3 issue (官方, 号, 说) and the usual account-type words; words that
also begin ordinary names (新, 真, 原: 新东方) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DEFAULT_AFFIXES: tuple[str, ...] = (
    "官方", "官方号", "官方账号", "官号", "官微", "官博", "账号", "公众号", "服务号", "订阅号",
    "号", "说", "君", "酱", "频道", "资讯", "在线", "小编", "粉丝团", "粉丝会", "后援会",
    "俱乐部", "之家", "本人", "正版", "唯一", "TV", "app", "official", "real",
)


class Affixes:
    """Normalised labels, stripped from either end of a normalised name.

    ``min_core`` keeps at least that many characters: 号 alone is not a name.
    """

    def __init__(self, words: Iterable[str] = DEFAULT_AFFIXES, *, min_core: int = 2,
                 max_strips: int = 3) -> None:
        from .normalise import normalise

        self.words = frozenset(key for w in words if (key := normalise(w)))
        self.longest = max(map(len, self.words), default=0)
        self.min_core = min_core
        self.max_strips = max_strips

    def cores(self, key: str) -> Iterator[str]:
        """Each distinct form of ``key`` with one to ``max_strips`` labels taken off its
        ends (``key`` itself excluded), at least ``min_core`` characters long and not
        itself a label."""
        seen = {key}
        frontier = [key]
        for _ in range(self.max_strips):
            following = []
            for core in frontier:
                for stripped in self._strip_once(core):
                    if stripped not in seen:
                        seen.add(stripped)
                        following.append(stripped)
                        if stripped not in self.words:  # labels only: no name left
                            yield stripped
            frontier = following
            if not frontier:
                return

    def _strip_once(self, core: str) -> Iterator[str]:
        words, room = self.words, len(core) - self.min_core
        for size in range(1, min(self.longest, room) + 1):
            if core[:size] in words:
                yield core[size:]
            if core[-size:] in words:
                yield core[:-size]
