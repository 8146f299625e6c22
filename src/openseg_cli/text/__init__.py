"""Caption words (stanza noun extraction, lexicon fallback, caption files), class queries and templates.

Pure python + stanza (imported lazily, only when a pipeline is built); never lightning, typer or rich.
"""

from openseg_cli.text.caption_files import CaptionRecord, LineSkips, detect_format, read_caption_file
from openseg_cli.text.extractor import FILTERS, WordExtractor
from openseg_cli.text.gold import iter_conllu, score_noun_filter
from openseg_cli.text.lemmatizer import lemmatize_noun
from openseg_cli.text.lexicon import LexiconExtractor
from openseg_cli.text.nouns import NounExtractor
from openseg_cli.text.queries import class_display_name, parse_queries, read_class_file
from openseg_cli.text.stanza_pipeline import build_stanza_pipeline
from openseg_cli.text.templates import BUILTIN_TEMPLATES, check_template, fill_template, load_templates

__all__ = [
    "BUILTIN_TEMPLATES",
    "FILTERS",
    "CaptionRecord",
    "LineSkips",
    "LexiconExtractor",
    "NounExtractor",
    "WordExtractor",
    "build_stanza_pipeline",
    "check_template",
    "class_display_name",
    "detect_format",
    "fill_template",
    "iter_conllu",
    "lemmatize_noun",
    "load_templates",
    "parse_queries",
    "read_caption_file",
    "read_class_file",
    "score_noun_filter",
]
