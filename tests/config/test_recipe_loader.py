"""`load_recipe` is strict: unknown keys, wrong types, malformed YAML and overrides fail with one clear
`RecipeError`; `base:` works one level deep; recipes survive dict and YAML round trips unchanged."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from openseg_cli.config import Recipe, dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict
from openseg_cli.errors import RecipeError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def write(tmp_path: Path):
    """`write(text, name="r.yaml") -> Path`: a recipe file in tmp_path."""

    def _write(text: str, name: str = "r.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


def _error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides or [])
    message = str(info.value)
    assert "\n" not in message  # the CLI prints exactly one line
    return message


# --- unknown keys -----------------------------------------------------------------------------------


def test_unknown_top_level_key_names_it_and_suggests_the_section(write) -> None:
    message = _error(write("trainr:\n  max_steps: 3\n"))
    assert "'trainr'" in message
    assert "did you mean trainer" in message


def test_unknown_nested_key_names_the_dotted_key_and_the_close_match(write) -> None:
    message = _error(write("model:\n  num_querys: 4\n"))
    assert "'model.num_querys'" in message
    # The suggestion is the full dotted key, so it can be pasted into `--set` as is.
    assert "model.num_queries" in message.split("did you mean", 1)[1]


def test_unknown_key_two_sections_deep(write) -> None:
    message = _error(write("model:\n  clip:\n    pretraind: openai\n"))
    assert "'model.clip.pretraind'" in message and "model.clip.pretrained" in message


def test_unknown_key_without_close_match_still_lists_known_keys(write) -> None:
    message = _error(write("optim:\n  zzzzzz: 1\n"))
    assert "'optim.zzzzzz'" in message
    assert "did you mean" not in message  # nothing is close: no misleading suggestion
    assert "lr" in message and "warmup_steps" in message


# --- wrong types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dotted"),
    [
        ("optim:\n  lr: abc\n", "optim.lr"),
        ("trainer:\n  max_steps: 1.5\n", "trainer.max_steps"),
        ("trainer:\n  max_steps: true\n", "trainer.max_steps"),  # bool is an int subclass in Python
        ("data:\n  hflip: 1\n", "data.hflip"),  # an int is not a bool
        ("data:\n  crop_size: '640'\n", "data.crop_size"),  # a quoted number stays a string
        ("trainer:\n  devices: 1.5\n", "trainer.devices"),  # int | str accepts neither a float
        ("trainer:\n  devices: true\n", "trainer.devices"),  # ... nor a bool
        ("data:\n  scale_range: [0.5, 1.0, 2.0]\n", "data.scale_range"),  # a pair, not a triple
        ("data:\n  scale_range: 0.5\n", "data.scale_range"),
        ("model:\n  clip: RN50\n", "model.clip"),  # a section given a scalar
        ("name: 123\n", "name"),
    ],
)
def test_wrong_type_is_refused_with_the_dotted_key(write, text: str, dotted: str) -> None:
    message = _error(write(text))
    assert f"'{dotted}' must be" in message


def test_ints_are_accepted_for_float_fields_and_become_floats(write) -> None:
    recipe = load_recipe(write("optim:\n  lr: 1\n  grad_clip: 0\n"))
    assert recipe.optim.lr == 1.0 and type(recipe.optim.lr) is float
    assert type(recipe.optim.grad_clip) is float


def test_scientific_notation_is_a_float(write) -> None:
    """PyYAML reads `1e-3` (no dot) and `1.0e5` (unsigned exponent) as strings; float fields take them."""
    recipe = load_recipe(write("optim:\n  lr: 1e-3\n  weight_decay: 1.0e5\n"))
    assert recipe.optim.lr == pytest.approx(1e-3)
    assert recipe.optim.weight_decay == pytest.approx(1e5)


def test_devices_takes_an_int_or_a_word(write) -> None:
    assert load_recipe(write("trainer:\n  devices: 4\n")).trainer.devices == 4
    assert load_recipe(write("trainer:\n  devices: auto\n")).trainer.devices == "auto"


def test_scale_range_list_becomes_a_float_tuple(write) -> None:
    recipe = load_recipe(write("data:\n  scale_range: [1, 2]\n"))
    assert recipe.data.scale_range == (1.0, 2.0)
    assert all(type(x) is float for x in recipe.data.scale_range)


def test_a_recipe_must_be_a_mapping(write) -> None:
    assert "mapping" in _error(write("- model\n- data\n"))


def test_an_empty_file_is_the_default_recipe(write) -> None:
    assert load_recipe(write("")) == Recipe()


def test_missing_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.yaml")
    assert "recipe not found" in message and "nope.yaml" in message


def test_recipes_are_frozen(write) -> None:
    recipe = load_recipe(write("name: a\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.model.num_queries = 3  # type: ignore[misc]


# --- malformed YAML ---------------------------------------------------------------------------------


def test_malformed_yaml_names_the_line(write) -> None:
    # Line 4 holds the error ("a: b: c" is not a mapping value YAML allows).
    message = _error(write("name: x\nmodel:\n  fpn_dim: 16\n  head_width: 16: 3\n"))
    assert "malformed YAML (line 4)" in message
    assert "r.yaml" in message


def test_tab_indentation_names_the_line(write) -> None:
    message = _error(write("name: x\n\tmodel: 1\n"))
    assert "(line 2)" in message


# --- `--set` overrides ------------------------------------------------------------------------------


@pytest.fixture
def toy() -> Path:
    return REPO / "recipes" / "toy.yaml"


def test_override_values_are_parsed_as_yaml(toy: Path) -> None:
    recipe = load_recipe(
        toy,
        [
            "optim.lr=0.25",
            "optim.weight_decay=1e-3",  # no dot: a string to YAML 1.1, still a float here
            "model.clip.pretrained=null",
            "data.scale_range=[0.8, 1.2]",
            "model.clip.name=RN101",  # nested two levels
            "trainer.max_steps=7",
            "data.hflip=false",
            "name=renamed",
        ],
    )
    assert recipe.optim.lr == 0.25
    assert recipe.optim.weight_decay == pytest.approx(1e-3)
    assert recipe.model.clip.pretrained is None
    assert recipe.data.scale_range == (0.8, 1.2)
    assert recipe.model.clip.name == "RN101"
    assert recipe.trainer.max_steps == 7
    assert recipe.data.hflip is False
    assert recipe.name == "renamed"


def test_override_keeps_the_rest_of_the_section(toy: Path) -> None:
    base = load_recipe(toy)
    recipe = load_recipe(toy, ["model.num_queries=3"])
    assert recipe.model.num_queries == 3
    assert dataclasses.replace(recipe.model, num_queries=base.model.num_queries) == base.model


def test_later_override_wins(toy: Path) -> None:
    assert load_recipe(toy, ["optim.lr=0.1", "optim.lr=0.2"]).optim.lr == 0.2


def test_override_value_with_a_colon_stays_a_string(toy: Path) -> None:
    # `a: b` is YAML for a mapping; a path like this must not turn into one or fail to parse.
    recipe = load_recipe(toy, ["data.train_shards=C:/data/shards"])
    assert recipe.data.train_shards == "C:/data/shards"


@pytest.mark.parametrize("item", ["optim.lr", "=x", "=", ".lr=1", "optim..lr=1", "optim.=1"])
def test_malformed_override_is_refused(toy: Path, item: str) -> None:
    message = _error(toy, [item])
    assert "is not of the form section.key=value" in message
    assert repr(item) in message


def test_unknown_key_via_override_suggests_the_close_match(toy: Path) -> None:
    message = _error(toy, ["model.num_querys=3"])
    assert "'model.num_querys'" in message and "model.num_queries" in message


def test_override_below_a_scalar_is_refused(toy: Path) -> None:
    message = _error(toy, ["name.first=x"])
    assert "name is not a section" in message


def test_override_with_wrong_type_is_refused(toy: Path) -> None:
    assert "'optim.lr' must be float" in _error(toy, ["optim.lr=abc"])
    assert "'trainer.max_steps' must be int" in _error(toy, ["trainer.max_steps=1.5"])


# --- base: ------------------------------------------------------------------------------------------


def test_base_one_level_child_wins_and_siblings_are_kept(write) -> None:
    write("name: parent\nmodel:\n  num_queries: 4\n  fpn_dim: 32\noptim:\n  lr: 0.1\n", "parent.yaml")
    child = write("base: parent.yaml\nname: child\nmodel:\n  num_queries: 8\n", "child.yaml")
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.model.num_queries == 8  # the child's value wins
    assert recipe.model.fpn_dim == 32  # the parent's sibling key in the same section is kept (deep merge)
    assert recipe.optim.lr == 0.1  # a section only the parent sets


def test_overrides_win_over_child_and_base(write) -> None:
    write("optim:\n  lr: 0.1\n", "parent.yaml")
    child = write("base: parent.yaml\noptim:\n  lr: 0.2\n", "child.yaml")
    assert load_recipe(child, ["optim.lr=0.3"]).optim.lr == 0.3


def test_base_is_resolved_relative_to_the_recipe_folder(tmp_path: Path, write, monkeypatch) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "parent.yaml").write_text("model:\n  num_queries: 5\n")
    (sub / "child.yaml").write_text("base: parent.yaml\n")
    monkeypatch.chdir(tmp_path)  # the working directory has no parent.yaml
    assert load_recipe("sub/child.yaml").model.num_queries == 5


def test_two_levels_of_base_are_refused(write) -> None:
    write("name: grandparent\n", "grand.yaml")
    write("base: grand.yaml\nname: parent\n", "parent.yaml")
    message = _error(write("base: parent.yaml\nname: child\n", "child.yaml"))
    assert "only one level" in message


def test_missing_base_is_a_recipe_error(write) -> None:
    message = _error(write("base: nowhere.yaml\n"))
    assert "recipe not found" in message and "nowhere.yaml" in message


# --- round trips ------------------------------------------------------------------------------------


def _all_recipes() -> list[Recipe]:
    recipes = [Recipe()] + [load_recipe(p) for p in sorted((REPO / "recipes").glob("*.yaml"))]
    # Non-default shapes of every union/tuple field, so they round-trip too.
    recipes.append(
        load_recipe(REPO / "recipes" / "toy.yaml", ["trainer.devices=auto", "model.clip.pretrained=null"])
    )
    return recipes


def test_dict_round_trip_is_exact_and_json_safe() -> None:
    for recipe in _all_recipes():
        data = recipe_to_dict(recipe)
        assert json.loads(json.dumps(data)) == data  # plain data: what a checkpoint stores
        assert recipe_from_dict(data) == recipe


def test_recipe_from_dict_is_as_strict_as_yaml() -> None:
    data = recipe_to_dict(Recipe())
    data["model"]["num_querys"] = 3
    with pytest.raises(RecipeError, match=r"model\.num_queries"):
        recipe_from_dict(data)
    with pytest.raises(RecipeError, match="mapping"):
        recipe_from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_dump_recipe_writes_yaml_that_loads_back_equal(tmp_path: Path) -> None:
    for index, recipe in enumerate(_all_recipes()):
        path = tmp_path / f"recipe{index}.yaml"
        dump_recipe(recipe, path)
        assert load_recipe(path) == recipe
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temp file left behind


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("optim.optimizer=adam", "adamw"),
        ("optim.schedule=cosin", "cosine"),
        ("loss.segmentation=maxdice", "max_dice"),
        ("data.caption_sampling=every", None),
        ("loss.grounding_negatives=gather", None),
    ],
)
def test_named_choices_are_checked_when_the_recipe_is_read(override: str, hint: str | None) -> None:
    """A misspelt optimizer/schedule/loss name fails at load time, not minutes into a run."""
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=re.escape(f"'{key}' must be one of")) as err:
        load_recipe(REPO / "recipes" / "toy.yaml", [override])
    if hint:
        assert f"did you mean '{hint}'" in str(err.value)
