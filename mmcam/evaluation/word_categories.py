"""Which caption or question words name an annotated object category.

A caption says "two dogs on a couch"; COCO's instances say `dog` and `couch`. Scoring a word's
map against the ground truth needs the link between them: each category has a list of words
and phrases that name it (the name itself, synonyms, and every entry's plural), and a text is
scanned left to right for the longest phrase that names a category ("teddy bear" before
"bear", "hot dogs" before "dogs"). A phrase's map is the map of its last word, the head noun.

Synonyms follow the usual COCO caption-to-category lists (e.g. Lu et al. 2018, "Neural Baby
Talk"), pruned of words that name a category only sometimes ("bag", "board", "light", "sign"):
a missed word costs less than a wrong pairing. The synthetic shapes data has its four kinds.
A category name with no entry here (a custom dataset) is named by itself and its plural.

A colour word just before the phrase ("the red circle") is kept as the mention's `color`, so
a shapes caption's "<colour> <shape>" can be paired with the ground-truth object of that
colour and kind (the shapes instances carry a non-official `color` field).

The mapping is lexical: it does not parse. A colour word that also names a category ("orange")
is read as a colour when a mention follows it ("an orange cat"), else as the category;
"glasses" counts as a wine glass. The per-category tables of the dataset scripts show where
such guesses matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "COCO_CATEGORIES",
    "COLOR_WORDS",
    "SHAPE_CATEGORIES",
    "SYNONYMS",
    "CategoryMention",
    "WordCategories",
    "plural",
]

COCO_CATEGORIES: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse",
    20: "sheep", 21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe",
    27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee",
    35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
    40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket",
    44: "bottle", 46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon",
    51: "bowl", 52: "banana", 53: "apple", 54: "sandwich", 55: "orange", 56: "broccoli",
    57: "carrot", 58: "hot dog", 59: "pizza", 60: "donut", 61: "cake", 62: "chair",
    63: "couch", 64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv",
    73: "laptop", 74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone",
    78: "microwave", 79: "oven", 80: "toaster", 81: "sink", 82: "refrigerator", 84: "book",
    85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear", 89: "hair drier",
    90: "toothbrush",
}  # fmt: skip
"""The 80 COCO 2014 instance categories by their official (gapped) ids."""

SHAPE_CATEGORIES: dict[int, str] = {1: "circle", 2: "square", 3: "triangle", 4: "star"}
"""The synthetic shapes data's categories (`mmcam.data.shapes.KINDS`), ids as its instances
files."""

SYNONYMS: dict[str, tuple[str, ...]] = {
    # COCO: singular words and phrases besides the category name; plurals are added.
    "person": (
        "people", "man", "woman", "boy", "girl", "child", "kid", "baby", "guy", "lady",
        "player", "skier", "surfer", "skateboarder", "snowboarder", "rider", "adult",
        "teenager", "toddler", "gentleman", "worker", "chef", "batter", "catcher", "pitcher",
        "umpire", "tourist", "crowd", "pedestrian", "biker", "cyclist",
    ),
    "bicycle": ("bike", "cycle"),
    "car": ("automobile", "sedan", "taxi", "cab", "suv", "van", "minivan", "jeep", "limo"),
    "motorcycle": ("motorbike", "motor bike", "scooter", "moped"),
    "airplane": ("plane", "aeroplane", "jet", "aircraft", "airliner", "jetliner"),
    "bus": ("double decker",),
    "train": ("locomotive", "tram", "subway"),
    "truck": ("pickup", "lorry", "firetruck", "fire truck"),
    "boat": ("ship", "sailboat", "yacht", "canoe", "kayak", "ferry"),
    "traffic light": ("stoplight", "stop light", "traffic signal"),
    "fire hydrant": ("hydrant",),
    "parking meter": ("meter",),
    "bird": (
        "pigeon", "seagull", "gull", "duck", "goose", "parrot", "owl", "eagle", "swan", "hawk",
    ),
    "cat": ("kitten", "kitty"),
    "dog": ("puppy", "pup", "doggy"),
    "horse": ("pony", "foal"),
    "sheep": ("lamb", "ram"),
    "cow": ("cattle", "bull", "calf", "ox"),
    "backpack": ("rucksack",),
    "umbrella": ("parasol",),
    "handbag": ("purse", "pocketbook"),
    "tie": ("necktie",),
    "suitcase": ("luggage", "baggage"),
    "skis": ("ski",),
    "sports ball": ("ball", "soccer ball", "tennis ball", "basketball", "volleyball"),
    "baseball bat": ("bat",),
    "baseball glove": ("glove", "mitt"),
    "skateboard": ("skate board",),
    "surfboard": ("surf board",),
    "tennis racket": ("racket", "racquet"),
    "wine glass": ("glass", "goblet"),
    "cup": ("mug",),
    "sandwich": ("burger", "hamburger"),
    "hot dog": ("hotdog",),
    "donut": ("doughnut",),
    "cake": ("cupcake",),
    "chair": ("stool",),
    "couch": ("sofa",),
    "potted plant": ("plant", "houseplant", "flower pot"),
    "dining table": ("table", "desk"),
    "tv": ("television", "monitor"),
    "laptop": ("computer",),
    "remote": ("remote control", "controller"),
    "cell phone": ("phone", "cellphone", "smartphone", "mobile phone"),
    "oven": ("stove",),
    "refrigerator": ("fridge",),
    "teddy bear": ("teddy", "stuffed animal"),
    "hair drier": ("hair dryer", "blow dryer"),
    "toothbrush": ("tooth brush",),
    # The synthetic shapes.
    "circle": ("disc", "disk"),
    "square": (),
    "triangle": (),
    "star": (),
}  # fmt: skip
"""Category name -> other singular words and phrases naming it (plurals are generated)."""

COLOR_WORDS: frozenset[str] = frozenset(
    "red green blue yellow purple orange white black brown gray grey pink".split()
)
"""Colour words kept as a mention's `color` when they come just before it."""

_SAME_PLURAL = {"sheep", "skis", "scissors", "cattle", "people", "luggage", "baggage", "crowd"}
_IRREGULAR = {
    "person": "people", "man": "men", "woman": "women", "child": "children",
    "mouse": "mice", "knife": "knives", "calf": "calves", "goose": "geese", "ox": "oxen",
    "gentleman": "gentlemen", "foot": "feet", "shelf": "shelves",
}  # fmt: skip


def plural(phrase: str) -> str:
    """The plural of a noun phrase: its last word pluralised ("hot dog" -> "hot dogs",
    "bus" -> "buses", "pony" -> "ponies", "knife" -> "knives", "sheep" -> "sheep")."""
    *head, last = phrase.split()
    if last in _SAME_PLURAL:
        word = last
    elif last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return " ".join([*head, word])


@dataclass(frozen=True)
class CategoryMention:
    """Words `start .. end - 1` of a text name category `category_id`; `head` (= end - 1) is
    the word whose map stands for the phrase; `color` is the colour word before it, if any."""

    start: int
    end: int
    category_id: int
    category: str
    color: str | None = None

    @property
    def head(self) -> int:
        return self.end - 1


class WordCategories:
    """Words and phrases -> category ids, for the categories of one dataset.

    `categories` maps ids to names (a COCO instances file's `categories`); each name is named
    by itself, its `SYNONYMS`, and all their plurals. A phrase claimed by two categories goes
    to the first (by id order) and the clash is listed in `clashes`.
    """

    def __init__(
        self,
        categories: Mapping[int, str],
        synonyms: Mapping[str, Sequence[str]] = SYNONYMS,
    ) -> None:
        self.categories = dict(categories)
        self.phrases: dict[tuple[str, ...], int] = {}
        self.clashes: list[tuple[str, int, int]] = []
        for category_id in sorted(self.categories):
            name = self.categories[category_id].lower()
            for singular in (name, *synonyms.get(name, ())):
                for phrase in (singular, plural(singular)):
                    key = tuple(phrase.split())
                    owner = self.phrases.setdefault(key, category_id)
                    if owner != category_id:
                        self.clashes.append((phrase, owner, category_id))
        self.longest = max((len(key) for key in self.phrases), default=0)

    @classmethod
    def coco(cls) -> WordCategories:
        """The 80 COCO categories with their official ids."""
        return cls(COCO_CATEGORIES)

    @classmethod
    def shapes(cls) -> WordCategories:
        """The four kinds of the synthetic shapes data."""
        return cls(SHAPE_CATEGORIES)

    def category_of(self, phrase: str) -> int | None:
        """The category id a word or phrase names ("dogs" -> 18 in COCO), or None."""
        return self.phrases.get(tuple(phrase.lower().split()))

    def find(self, words: Sequence[str]) -> list[CategoryMention]:
        """Every phrase of `words` (one token each, any case) that names a category, left to
        right, longest match first, not overlapping."""
        lowered = [word.lower() for word in words]
        mentions: list[CategoryMention] = []
        start = 0
        while start < len(lowered):
            size, category_id = self._longest_match(lowered, start)
            if category_id is None or (
                size == 1
                and lowered[start] in COLOR_WORDS
                and self._longest_match(lowered, start + 1)[1] is not None
            ):  # no mention, or a colour word ("orange") describing the next mention
                start += 1
                continue
            before = lowered[start - 1] if start else None
            color = before if before in COLOR_WORDS else None
            name = self.categories[category_id]
            mentions.append(CategoryMention(start, start + size, category_id, name, color))
            start += size
        return mentions

    def _longest_match(self, lowered: Sequence[str], start: int) -> tuple[int, int | None]:
        """(length, category id) of the longest phrase at `start`; (0, None) when none."""
        for size in range(min(self.longest, len(lowered) - start), 0, -1):
            category_id = self.phrases.get(tuple(lowered[start : start + size]))
            if category_id is not None:
                return size, category_id
        return 0, None
