"""A small rule-based English lemmatiser for nouns (plural -> singular).

Used when no stanza lemma model is available (the shared offline test model has none) and by the
lexicon fallback. It only undoes noun plurals; it never touches other parts of speech.

Rules, applied to a lower-cased word, first match wins:
1. invariant words (``sheep``, ``series``, ``jeans``, ``glasses``-like pluralia tantum) stay as they are;
2. whole-word irregulars: people->person, men->man, women->woman, children->child, feet->foot,
   teeth->tooth, mice->mouse, geese->goose, oxen->ox (also at the end of compounds: grandchildren,
   salespeople); compounds ending in ``-men`` -> ``-man``
   (policemen -> policeman) except a few nouns that end in -men in the singular (specimen, abdomen);
3. ``-ves`` -> ``-f``/``-fe`` for a fixed list (knives, leaves, shelves...); other -ves just lose the s
   (gloves, waves);
4. ``-ies`` -> ``-y`` (ladies -> lady), but ``-ie`` nouns keep their ``e`` (movies, cookies, ties);
5. ``-es`` -> drop ``es`` after ss, x, ch, sh, zz, consonant+z and for -us plurals (glasses, boxes, benches,
   dishes, buses); ``-oes`` drops ``es`` only for a fixed list (tomatoes) else ``s`` (shoes);
6. ``-s`` -> drop it, unless the word ends in ``ss`` (glass), ``us`` (bus; a few -us plurals such as
   menus are listed) or is a listed/-sis/-itis singular in ``is`` (tennis, basis). Unlike a blanket
   "never strip -is" rule this still singularises skis, kiwis and taxis, which are common in captions.
   Words shorter than 3 letters are left alone.

Known limits (deliberately small): Latin/Greek plurals (cacti, data, criteria) and most irregular
compounds are left alone; a singular noun ending in a bare ``s`` that is not listed (``lens`` and
``chaos`` are, ``thermos`` is not) loses it.
"""

from __future__ import annotations


def _wordset(words: str) -> frozenset[str]:
    """A frozenset from space-separated words (keeps the long word lists readable)."""
    return frozenset(words.split())


IRREGULAR_PLURALS = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "oxen": "ox",
    "quizzes": "quiz",
}

# Irregular plurals that also end compounds (grandchildren, salespeople, eyeteeth).
_IRREGULAR_SUFFIXES = ("children", "people", "teeth", "feet")

# Plural or mass forms that must not be stripped (pluralia tantum, zero plurals, singulars in -s).
INVARIANT = _wordset(
    "sheep deer fish species series aircraft pants jeans shorts trousers scissors clothes goggles "
    "sunglasses eyeglasses binoculars pliers tongs news gas canvas atlas alias bias lens chaos "
    "mathematics physics gymnastics athletics overalls"
)

# Singular nouns that end in -men, so the -men -> -man compound rule must skip them.
_MEN_SINGULARS = _wordset("specimen omen semen abdomen stamen amen regimen acumen hymen dolmen ramen lumen")

# Singulars ending in -is (besides -sis/-itis words); other -is words are plurals (skis, kiwis, taxis).
_IS_SINGULARS = _wordset("tennis iris axis pelvis trellis chassis ibis mantis debris metropolis marquis dais")

# Plurals ending in -us (otherwise a final -us is a singular: bus, cactus, octopus).
_US_PLURALS = _wordset("menus emus gnus tutus gurus haikus")

_VES_TO_F = {
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "leaves": "leaf",
    "loaves": "loaf",
    "halves": "half",
    "shelves": "shelf",
    "wolves": "wolf",
    "calves": "calf",
    "scarves": "scarf",
    "thieves": "thief",
    "hooves": "hoof",
    "elves": "elf",
    "selves": "self",
    "sheaves": "sheaf",
}

# Nouns whose singular ends in -ie (so "-ies" must become "-ie", not "-y").
_IE_SINGULARS = _wordset(
    "movie cookie brownie selfie zombie hippie goalie smoothie rookie calorie prairie genie pixie "
    "sweetie veggie birdie hoodie beanie collie tie pie lie die magpie necktie bowtie pinkie"
)

# Nouns whose singular ends in -che/-she (so "-ches" must keep the "e").
_CHE_SINGULARS = _wordset("headache niche moustache mustache avalanche cache cliche quiche creche psyche")

# -us nouns whose plural is -uses (otherwise "-uses" -> "-use": houses, blouses, causes).
_US_SINGULARS = _wordset(
    "bus cactus virus campus octopus circus census bonus status walrus genius chorus citrus "
    "hippopotamus platypus asparagus hibiscus abacus"
)

# -o nouns whose plural is -oes (otherwise "-oes" -> "-oe": shoes, toes, canoes).
_OES_PLURALS = _wordset(
    "tomatoes potatoes heroes volcanoes mangoes echoes torpedoes mosquitoes buffaloes dominoes "
    "tornadoes avocadoes flamingoes"
)

_VOWELS = frozenset("aeiou")


def lemmatize_noun(word: str) -> str:
    """Return the singular of an English noun (lower-cased), following the module's rules.

    Never fails: a word the rules do not recognise is returned lower-cased and unchanged.
    """
    w = word.lower()
    if len(w) < 3 or w in INVARIANT:
        return w
    if w in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[w]
    for suffix in _IRREGULAR_SUFFIXES:
        if w.endswith(suffix):
            return w[: -len(suffix)] + IRREGULAR_PLURALS[suffix]
    if w.endswith("men") and w not in _MEN_SINGULARS:
        return w[:-3] + "man"  # firemen, policemen, businesswomen
    if w in _VES_TO_F:
        return _VES_TO_F[w]
    if w.endswith("ies") and len(w) > 4:
        return w[:-1] if w[:-1] in _IE_SINGULARS else w[:-3] + "y"
    if w.endswith("es"):
        return _strip_es(w)
    if w.endswith("s") and not _is_singular_in_s(w):
        return w[:-1]
    return w


def _is_singular_in_s(w: str) -> bool:
    """True for words that end in s in the singular: glass, bus, tennis, basis (not skis, menus)."""
    if w.endswith("ss"):
        return True
    if w.endswith("us"):
        return w not in _US_PLURALS
    if w.endswith("is"):
        return w in _IS_SINGULARS or w.endswith(("sis", "itis"))
    return False


def _strip_es(w: str) -> str:
    """Singular of a word ending in -es: decide between dropping "es" (boxes) and "s" (horses)."""
    stem = w[:-2]
    if stem in INVARIANT or stem.endswith(("ss", "x", "sh", "zz")):
        return stem  # lenses, gases, glasses, boxes, dishes, buzzes
    if stem.endswith("ch"):
        return w[:-1] if w[:-1] in _CHE_SINGULARS else stem
    if stem.endswith("us"):
        return stem if stem in _US_SINGULARS else w[:-1]
    if stem.endswith("z") and len(stem) > 1 and stem[-2] not in _VOWELS:
        return stem  # waltzes -> waltz (but prizes -> prize below)
    if w.endswith("oes"):
        return stem if w in _OES_PLURALS else w[:-1]
    return w[:-1]  # horses, houses, vases, prizes, glasses-like cases handled above
