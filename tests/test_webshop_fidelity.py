"""WebShop equal to upstream (princeton-nlp/WebShop at 64fa2a5): goals, pages in both text modes, history,
weighted goal draws and the reward modes.

The expected values in ``tests/fixtures/webshop/upstream`` were produced by running
upstream's own code outside this repository on the fixture catalog (see the README
there): ``goals.json`` from its ``load_products`` + ``get_goals`` + the server's
shuffle, ``episodes.json`` from its ``WebAgentTextEnv`` played step by step,
``pages.json`` from its templates and HTML-to-text conversion. The human
instructions are the hand-written ``tests/fixtures/webshop/fixture_human_instructions.json`` (copied under
upstream's file name, ``items_human_ins.json``, where a data folder needs it).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import gymnasium
import pytest

import prism_agents.environments  # noqa: F401  (registers the Gymnasium ids)
from prism_agents.config.base import ConfigValueError
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments import WEBSHOP_GYM_ID, WebShopEnv
from prism_agents.environments.webshop import pages
from prism_agents.environments.webshop.catalog import CatalogFiles, load_catalog
from prism_agents.environments.webshop.goals import build_goals, weighted_goal_index
from prism_agents.environments.webshop.observation import History, render
from prism_agents.environments.webshop.reward import step_reward

FIXTURE = Path(__file__).parent / "fixtures" / "webshop"
UPSTREAM = FIXTURE / "upstream"
HUMAN_FILE = FIXTURE / "fixture_human_instructions.json"
FIXTURE_FILES = {"products_file": "fixture_products.json", "attributes_file": "fixture_attributes.json"}
EXPECTED_GOALS = json.loads((UPSTREAM / "goals.json").read_text())
EPISODES = json.loads((UPSTREAM / "episodes.json").read_text())
PAGES = json.loads((UPSTREAM / "pages.json").read_text())


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("webshop-index"))


@pytest.fixture(scope="module")
def human_data(tmp_path_factory) -> Path:
    """A data folder with the fixture catalog beside the hand-written human instructions."""
    folder = tmp_path_factory.mktemp("webshop-human")
    for name in FIXTURE_FILES.values():
        shutil.copy(FIXTURE / name, folder / name)
    shutil.copy(HUMAN_FILE, folder / "items_human_ins.json")
    return folder


def make_env(data: Path, index_dir: str, **settings) -> WebShopEnv:
    """The whole goal list as the ``test`` split, so that task ``i`` is upstream's session ``i``."""
    defaults = dict(FIXTURE_FILES, test_goals=1000, validation_goals=0, index_cache_dir=index_dir)
    return gymnasium.make(WEBSHOP_GYM_ID, split="test", data_path=str(data), **defaults | settings).unwrapped


def human_catalog():
    files = CatalogFiles(FIXTURE / "fixture_products.json", FIXTURE / "fixture_attributes.json", HUMAN_FILE, None)
    return load_catalog(files, "human")


# -- goals ------------------------------------------------------------------------------------------


def test_processed_products_equal_upstreams_load_products():
    files = CatalogFiles(FIXTURE / "fixture_products.json", FIXTURE / "fixture_attributes.json", None, None)
    assert json.loads(json.dumps(load_catalog(files).products)) == json.loads((UPSTREAM / "products.json").read_text())


@pytest.mark.parametrize("seed", [42, 7])
def test_human_goals_equal_upstreams_get_human_goals_and_shuffle(seed):
    goals, prices = build_goals(human_catalog(), "human", seed)
    expected = EXPECTED_GOALS[f"human_seed_{seed}"]
    assert prices == expected["prices"]
    assert goals == expected["goals"]
    # The file's cases: 15 instructions, 3 without attributes skipped, 1 for a product the catalog lacks and
    # 1 for a listing it drops; several per product; B0FX000004 costs too much for a price limit.
    assert len(goals) == 11 and Counter(goal["asin"] for goal in goals)["B0FX000003"] == 2
    assert {goal["asin"] for goal in goals}.isdisjoint({"B0FX000099", "B0FX000017XX"})
    radio = next(goal for goal in goals if goal["asin"] == "B0FX000004")
    assert radio["price_upper"] == 1000000 and "price lower than" not in radio["instruction_text"]


def test_synthetic_goals_equal_upstreams_when_upstream_is_seeded_with_42():
    files = CatalogFiles(FIXTURE / "fixture_products.json", FIXTURE / "fixture_attributes.json", None, None)
    goals, prices = build_goals(load_catalog(files), "synthetic")
    expected = EXPECTED_GOALS["synthetic_seed_42"]
    assert (goals, prices) == (expected["goals"], expected["prices"])


def test_the_goal_seed_moves_price_limits_only_and_every_description_names_it(human_data, index_dir):
    seeded = {seed: [goal["price_upper"] for goal in EXPECTED_GOALS[f"human_seed_{seed}"]["goals"]] for seed in (42, 7)}
    assert seeded[42] != seeded[7]
    env = make_env(human_data, index_dir, goals="human", goal_seed=7, test_goals=4, validation_goals=3)
    expected = EXPECTED_GOALS["human_seed_7"]["goals"]
    # The first test_goals shuffled goals are the test split, the next validation_goals the validation split.
    assert [env.shop.goals[int(task.task_id.removeprefix("goal-"))] for task in env.tasks()] == expected[:4]
    assert [task.task_id for task in env.tasks()] == ["goal-0", "goal-1", "goal-2", "goal-3"]
    config = EnvironmentConfig(
        name="webshop", data_path=str(human_data), params=dict(FIXTURE_FILES, goals="human", goal_seed=7, test_goals=4,
                                                               validation_goals=3, index_cache_dir=index_dir)
    )
    assert WebShopEnv.split_description(config, "validation") == (
        "WebShop validation split: goals 4-6 (3 of 11 human goals), 16-product catalog, goal seed 7"
    )
    observation, info = env.reset(options={"task": 0})
    assert info["instruction"] == expected[0]["instruction_text"] and expected[0]["instruction_text"] in observation


# -- pages, observation modes and history ------------------------------------------------------------


@pytest.mark.parametrize("episode", EPISODES, ids=lambda episode: f"{episode['name']}-{episode['mode']}")
def test_episodes_equal_upstreams_text_environment(episode, index_dir):
    env = make_env(
        FIXTURE, index_dir, observation_mode=episode["mode"],
        num_prev_obs=episode.get("num_prev_obs", 0), num_prev_actions=episode.get("num_prev_actions", 0),
    )
    observation, info = env.reset(options={"task": episode["goal"]})
    observations, available, rewards, dones = [observation], [info["admissible_actions"]], [], []
    for action in episode["actions"]:
        observation, reward, terminated, _, info = env.step(action)
        observations.append(observation)
        available.append(info["admissible_actions"])
        rewards.append(reward)
        dones.append(terminated)
    for step, (ours, upstream) in enumerate(zip(observations, episode["observations"], strict=True)):
        assert ours == upstream, f"step {step} ({(['reset'] + episode['actions'])[step]})"
    assert available == [as_actions(upstream) for upstream in episode["available_actions"]]
    assert rewards == pytest.approx(episode["rewards"]) and dones == episode["done"]


def as_actions(available: dict) -> list[str]:
    """Upstream's ``get_available_actions()`` in the grammar of ``info["admissible_actions"]``."""
    search = ["search[<keywords>]"] if available["has_search_bar"] else []
    return search + [f"click[{clickable}]" for clickable in available["clickables"] if clickable != "search"]


@pytest.mark.parametrize("page", PAGES["pages"], ids=lambda page: page["name"])
def test_sub_pages_equal_upstreams_templates(page, index_dir):
    """Empty and blank bullet points, an empty or blank description and reviews, rendered by upstream's templates."""
    product = dict(make_env(FIXTURE, index_dir).shop.catalog.by_asin["B0FX000009"])
    product.update(BulletPoints=page["bullet_points"], Description=page["description"], Reviews=page["reviews"])
    rendered = pages.sub_page(page["instruction"], product, page["kind"])
    assert (render(rendered, "text"), render(rendered, "text_rich")) == (page["text"], page["text_rich"])


def test_history_carries_earlier_actions_and_observations_oldest_first():
    history = History(num_prev_obs=1, num_prev_actions=2)
    assert history.start("o0") == "o0"
    assert history.step("a1", "o1") == "o0 [SEP] a1 [SEP] o1"
    assert history.step("a2", "o2") == "a1 [SEP] o1 [SEP] a2 [SEP] o2"
    assert History().step("a1", "o1") == "o1"


def test_an_unknown_observation_mode_is_refused():
    with pytest.raises(ValueError, match="known: text, text_rich"):
        render(pages.search_page("x"), "html")


# -- goal sampling -------------------------------------------------------------------------------------


def test_weighted_draws_pick_the_goal_upstreams_random_idx_picks():
    weights = PAGES["weights"]
    assert weights == [goal["weight"] for goal in EXPECTED_GOALS["synthetic_seed_42"]["goals"]]
    assert [weighted_goal_index(weights, draw) for draw, _ in PAGES["weighted_draws"]] == [
        index for _, index in PAGES["weighted_draws"]
    ]
    assert weighted_goal_index([1.0], 0.5) == 0


def test_reset_without_a_task_draws_by_weight_and_is_seeded(index_dir):
    env = make_env(FIXTURE, index_dir)
    weights = [env.shop.goals[int(task.task_id.removeprefix("goal-"))]["weight"] for task in env.tasks()]
    draws = 3000
    env.reset(seed=5)
    counts = Counter(env.reset()[1]["task_id"] for _ in range(draws))
    # Upstream's draw: goal i gets goal i-1's share, the last goal the last two shares, goal 0 none.
    shares = [0.0] + [w / sum(weights) for w in weights[:-2]] + [(weights[-2] + weights[-1]) / sum(weights)]
    for index, share in enumerate(shares):
        assert abs(counts[f"goal-{index}"] / draws - share) < 0.025, (index, counts[f"goal-{index}"], share)
    assert [env.reset(seed=9)[1]["task_id"] for _ in range(2)] == [env.reset(seed=9)[1]["task_id"]] * 2
    uniform = make_env(FIXTURE, index_dir, goal_sampling="uniform")
    uniform.reset(seed=5)
    assert "goal-0" in {uniform.reset()[1]["task_id"] for _ in range(300)}


# -- reward modes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, exact, wrong", [("scaled", 1.0, 0.8), ("success_only", 1.0, 0.0)])
def test_reward_modes_change_the_buying_reward_not_the_score(mode, exact, wrong, index_dir):
    env = make_env(FIXTURE, index_dir, reward_mode=mode)
    for option, reward_expected, score in (("mini", exact, 1.0), ("standard", wrong, 0.8)):
        env.reset(options={"task": 2})  # the speaker in ocean blue, size mini; a wrong size scores (2 + 1 + 1) / 5
        for action in ("search[portable bluetooth speaker]", "click[b0fx000003]", "click[ocean blue]", f"click[{option}]"):
            env.step(action)
        _, reward, terminated, _, info = env.step("click[buy now]")
        assert terminated and reward == pytest.approx(reward_expected)
        assert info["score"] == pytest.approx(score) and info["won"] == (score == 1.0)
    assert step_reward(0.25, "scaled") == 0.25 and step_reward(1.0, "success_only") == 1.0
    with pytest.raises(ValueError, match="known: scaled, success_only"):
        step_reward(1.0, "binary")


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"observation_mode": "html"}, "params.observation_mode", "must be one of 'text', 'text_rich'"),
        ({"num_prev_obs": -1}, "params.num_prev_obs", "must be 0 or more"),
        ({"num_prev_actions": -2}, "params.num_prev_actions", "must be 0 or more"),
        ({"reward_mode": "binary"}, "params.reward_mode", "must be one of 'scaled', 'success_only'"),
        ({"goal_sampling": "random"}, "params.goal_sampling", "must be one of 'weighted', 'uniform'"),
    ],
)
def test_wrong_new_settings_are_config_errors_naming_the_key(params, field, message):
    with pytest.raises(ConfigValueError, match=message) as caught:
        WebShopEnv.params(EnvironmentConfig(name="webshop", params=params))
    assert caught.value.field == field


def test_settings_that_change_what_an_episode_records_change_the_task_fingerprint(index_dir):
    """Cached demonstrations are keyed by the fingerprint: a text_rich run must not reuse text-mode pages."""

    def fingerprint(**settings) -> str:
        params = dict(FIXTURE_FILES, index_cache_dir=index_dir, **settings)
        config = EnvironmentConfig(name="webshop", data_path=str(FIXTURE), params=params)
        return WebShopEnv.task_fingerprint(config, WebShopEnv.list_tasks(config, "test")[1])  # goal 0 has no price limit

    plain = fingerprint()
    changed = [fingerprint(observation_mode="text_rich"), fingerprint(num_prev_obs=1), fingerprint(num_prev_actions=1),
               fingerprint(reward_mode="success_only"), fingerprint(goal_seed=7)]
    assert len({plain, *changed}) == 6
    assert fingerprint(goal_sampling="uniform") == plain
