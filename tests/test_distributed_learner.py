"""The distributed learner on a bounded local Ray: 2 torch.distributed workers (gloo, DDP over the adapter) give the
same adapter as 1 worker and as the local learner on the same global batches (SFT, one GRPO update, one PPO update,
within float tolerance), a 2-worker probe gives the same scores as 1 (exactly: whole batches are dealt out), and a
killed worker ends the call with a clear error instead of a hang."""

import dataclasses
import io
import json
import threading
import time

import pytest
import torch
from run_arguments import last_line
from tiny_model import outcome_episodes, sample_trajectory

from prism_agents.cli import main
from prism_agents.cluster.learner_group import DistributedLearner, LearnerGroup, LearnerGroupError, adapter_weights
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.model import LoraConfig
from prism_agents.config.rl import PPOConfig, RewardConfig, RLConfig
from prism_agents.config.training import PromptConfig, SFTConfig
from prism_agents.io import read_jsonl
from prism_agents.learners.grpo import GRPOLearner
from prism_agents.learners.parallel import LOCAL, DataParallel
from prism_agents.learners.ppo import PPOLearner
from prism_agents.learners.rl_samples import rl_samples
from prism_agents.learners.sft import SFTLearner
from prism_agents.learners.tokens import length_batches
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.routers.probe import GradientProbe

ray = pytest.importorskip("ray")

LORA = LoraConfig(rank=8)
ADAPTER_TOLERANCE = 0.01
"""Adapters of 1 and 2 workers differ by at most this share of the largest change training made: the gradients
agree to float rounding (about 1e-7 relative: they are summed in another order), and AdamW, which divides each
gradient entry by its own running scale, turns that into update differences of up to about 0.3 % of an update
over the ten steps of these tests at learning rate 1e-4 (measured)."""


@pytest.fixture(scope="module")
def local_ray():
    """A bounded Ray for this module: 2 CPUs, 100 MiB object store, localhost, no dashboard; stopped at the end."""
    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def group_of(workers: int, model_config, cpus: float = 0.25) -> LearnerGroup:
    """A group of ``workers`` on one torch thread each, as this process runs the tiny model (so one worker is
    bit for bit the local learner)."""
    cluster = ClusterConfig(backend="ray", learner_workers=workers, learner_cpus=cpus, actor_threads=1)
    return LearnerGroup(cluster, model_config, LORA)


@pytest.fixture(scope="module")
def groups(local_ray, model_config):
    """A 1-worker and a 2-worker group, shared by the equality tests (0.75 of the 2 CPUs, so that the run-level test
    finds room for its environment, generator and learner actors)."""
    with group_of(1, model_config) as one, group_of(2, model_config) as two:
        yield {1: one, 2: two}


def driver_policy(model_config) -> tuple[Policy, PromptBuilder]:
    policy = Policy.load(model_config, LORA)
    return policy, PromptBuilder(policy.tokenizer, PromptConfig(history="window"), "alfworld")


def demonstrations(count: int):
    """``count`` expert episodes of different lengths (instructions of growing length), so batches hold 1-3 rows."""
    episodes = []
    for number in range(count):
        episode = sample_trajectory(f"expert:{number}")
        episode.instruction = "Your task is to: put a pen in drawer." + " Then look." * number
        episodes.append(episode)
    return episodes


def played(prompts, outcomes):
    """Served episodes of the sample task, one per outcome (won: reward 1 on the last step, or lost: 0)."""
    return outcome_episodes(prompts, outcomes, logprob=-1.0)


def largest(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


def assert_same_adapter(a: Policy, b: Policy, model_config) -> None:
    """Asserts the adapters of ``a`` and ``b`` moved from the fresh one and agree within :data:`ADAPTER_TOLERANCE`."""
    fresh, first, second = adapter_weights(Policy.load(model_config, LORA)), adapter_weights(a), adapter_weights(b)
    change = largest(first, fresh)
    assert change > 0 and largest(first, second) <= ADAPTER_TOLERANCE * change, (largest(first, second), change)


def train_everywhere(groups, model_config, name, config, data_of):
    """(local policy, local metrics, {workers: (policy, metrics, steps)}) of one ``train`` call of learner ``name``."""
    local, prompts = driver_policy(model_config)
    learner = {"sft": SFTLearner, "grpo": GRPOLearner, "ppo": PPOLearner}[name](config)
    local_metrics = learner.train(local, data_of(prompts), prompts=prompts)
    results = {}
    for workers, group in groups.items():
        policy, prompts = driver_policy(model_config)
        steps = []
        distributed = group.learner(name, config)
        metrics = distributed.train(policy, data_of(prompts), prompts=prompts, on_step=steps.append)
        results[workers] = (policy, metrics, steps, distributed)
    return local, local_metrics, results


def test_shares_cover_a_batch_once_in_order_and_an_empty_share_runs_a_zero_weighted_row():
    for size in range(1, 8):
        batch = list(range(size))
        shares = [DataParallel(rank, 3).share(batch) for rank in range(3)]
        assert [row for share in shares if share.present for row in share.rows] == batch
        assert all(share.weight == (3.0 if share.present else 0.0) for share in shares)
        assert all(share.rows == [0] for share in shares if not share.present)
        assert LOCAL.share(batch).rows == batch and LOCAL.share(batch).weight == 1.0


def test_two_sft_workers_give_the_adapter_of_one_and_of_the_local_learner(groups, model_config):
    config = SFTConfig(epochs=2, learning_rate=1e-4, batch_tokens=1200, warmup_ratio=0.0, progress=False)
    local, local_metrics, results = train_everywhere(groups, model_config, "sft", config, lambda _: demonstrations(5))
    (one, one_metrics, one_steps, _), (two, two_metrics, two_steps, _) = results[1], results[2]
    assert largest(adapter_weights(one), adapter_weights(local)) == 0.0  # one worker computes what one process does
    assert [step["examples"] for step in two_steps] == [step["examples"] for step in one_steps]
    assert min(step["examples"] for step in two_steps) == 1  # a batch one of the two workers has no row of
    assert max(step["examples"] for step in two_steps) >= 3
    assert_same_adapter(one, two, model_config)
    for key in ("loss_mean", "loss_last_epoch", "tokens_trained", "action_tokens", "steps", "examples"):
        assert two_metrics[key] == pytest.approx(one_metrics[key], rel=1e-5), key
        assert two_metrics[key] == pytest.approx(local_metrics[key], rel=1e-5), key
    for a, b in zip(one_steps, two_steps, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["tokens"] == b["tokens"] and a["action_tokens"] == b["action_tokens"]


RL_KEYS = ("policy_loss", "kl", "approx_kl", "clip_fraction", "entropy", "grad_norm", "tokens_trained", "samples")


@pytest.mark.parametrize("name", ["grpo", "ppo"])
def test_one_rl_update_on_two_workers_matches_one_worker_and_the_local_learner(groups, model_config, name):
    config = RLConfig(learning_rate=1e-4, epochs=2, batch_tokens=700, kl_coef=0.05, clip_ratio_c=None,
                      reward=RewardConfig(win=1.0), ppo=PPOConfig(lam=1.0))
    outcomes = [True, False, True, False, False]
    local, local_metrics, results = train_everywhere(groups, model_config, name, config, lambda p: played(p, outcomes))
    lengths = [len(sample.input_ids) for sample in rl_samples(played(driver_policy(model_config)[1], outcomes))]
    assert 1 in map(len, length_batches(lengths, config.batch_tokens))  # a batch one of the two workers has no row of
    (one, one_metrics, one_steps, one_learner), (two, two_metrics, two_steps, two_learner) = results[1], results[2]
    assert largest(adapter_weights(one), adapter_weights(local)) == 0.0
    assert len(two_steps) == len(one_steps) >= 2 and min(step["action_tokens"] for step in two_steps) > 0
    assert min(step["grad_norm"] for step in two_steps) > 0
    assert_same_adapter(one, two, model_config)
    keys = RL_KEYS + (("value_loss", "value_mean", "explained_variance") if name == "ppo" else ())
    for key in keys:
        assert two_metrics[key] == pytest.approx(one_metrics[key], rel=1e-4, abs=1e-7), key
        assert two_metrics[key] == pytest.approx(local_metrics[key], rel=1e-4, abs=1e-7), key
    for a, b in zip(one_steps, two_steps, strict=True):
        assert a["logprob_gap_max"] == pytest.approx(b["logprob_gap_max"], rel=1e-4, abs=1e-6)
        assert a["action_tokens"] == b["action_tokens"]
    if name == "ppo":  # the value head lives in the workers and comes back through save_state
        states = [torch.load(io.BytesIO(learner.group._call_rank0("save_state", learner.key)), weights_only=True)
                  for learner in (one_learner, two_learner)]
        heads = [state["value_head"]["weight"] for state in states]
        assert (heads[0] - heads[1]).abs().max() <= ADAPTER_TOLERANCE * heads[0].abs().max() > 0


def test_rl_state_survives_save_and_load_on_the_workers(groups, model_config, tmp_path):
    config = RLConfig(learning_rate=3e-3, batch_tokens=700, reward=RewardConfig(win=1.0))
    policy, prompts = driver_policy(model_config)
    learner = groups[2].learner("ppo", config)
    learner.train(policy, played(prompts, [True, False]), prompts=prompts)
    learner.save_state(tmp_path / "rl_state.pt")
    restored = groups[2].learner("ppo", config)
    restored.load_state(tmp_path / "rl_state.pt", policy)
    restored.save_state(tmp_path / "again.pt")
    first, second = (torch.load(tmp_path / name, weights_only=True) for name in ("rl_state.pt", "again.pt"))
    assert torch.equal(first["value_head"]["weight"], second["value_head"]["weight"])
    moments = [[s["exp_avg"] for s in state["optimizer"]["state"].values()] for state in (first, second)]
    assert len(moments[0]) == len(moments[1]) > 0 and all(map(torch.equal, *moments))


def test_two_probe_workers_give_the_scores_of_one(groups, model_config):
    policy, prompts = driver_policy(model_config)
    with torch.no_grad():  # an adapter that is not the identity, so target lora and use_adapter both matter
        for parameter in policy.trainable_parameters():
            parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(1))
    trajectories = demonstrations(5)
    options = dict(target="lora", batch_tokens=2000)
    one, two = (groups[n].probe(policy, prompts, trajectories, **options) for n in (1, 2))
    probe = GradientProbe(policy, prompts, **options)
    assert len(probe.batches([probe.examples(t) for t in trajectories])) >= 3  # both workers probe some
    local = probe.probe(trajectories)
    assert [r.trajectory_id for r in two] == [t.trajectory_id for t in trajectories]
    assert [dataclasses.astuple(r) for r in two] == [dataclasses.astuple(r) for r in one]
    for a, b in zip(local, two, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)
        assert a.gradient_norms == pytest.approx(b.gradient_norms, rel=1e-4)
    assert all(min(r.gradient_norms) > 0 for r in two)


def test_a_killed_worker_ends_training_with_a_clear_error(local_ray, groups, model_config):
    policy, prompts = driver_policy(model_config)
    config = SFTConfig(epochs=100_000, batch_tokens=900, progress=False)  # runs until the kill
    with group_of(2, model_config) as group:
        learner = group.learner("sft", config)
        victim = group.workers[1]
        threading.Timer(3.0, lambda: ray.kill(victim)).start()
        started = time.perf_counter()
        with pytest.raises(LearnerGroupError, match=r"learner worker \d of 2 failed in train.*--resume"):
            learner.train(policy, demonstrations(3), prompts=prompts)
        assert time.perf_counter() - started < 60  # the other worker, waiting in the all-reduce, was stopped too
        assert group.workers == []


RAY_RUN = (  # 1.25 CPUs in all while the RL stage plays: room beside the module's groups
    "cluster.backend=ray", "cluster.learner_workers=2", "cluster.learner_cpus=0.25", "cluster.env_workers=2",
    "cluster.env_worker_cpus=0.25", "cluster.generator_cpus=0.25",
)


@pytest.mark.slow
def test_a_run_whose_learner_worker_dies_fails_its_stage_and_resume_finishes_it_like_a_local_run(
    local_ray, run_args, tmp_path, monkeypatch, capsys
):
    assert main(run_args("rl.iterations=1")) == 0
    local = last_line(capsys.readouterr().out)
    original = DistributedLearner.train

    def worker_killed_first(self, *args, **kwargs):
        ray.kill(self.group.workers[1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DistributedLearner, "train", worker_killed_first)
    assert main(run_args("rl.iterations=1", *RAY_RUN)) == 1
    assert "learner worker 1 of 2 failed in train" in capsys.readouterr().err
    (run,) = [folder for folder in (tmp_path / "runs").iterdir() if folder != local]
    assert "sft" not in json_records(run) and "route" in json_records(run)
    monkeypatch.undo()
    assert main(["run", "--resume", str(run)]) == 0
    assert {"sft", "rl", "eval"} <= set(json_records(run))
    assert [line["adapter"] for line in read_jsonl(run / "rl_iterations.jsonl")] == ["adapters/v2"]
    # the probe on 2 workers scored and routed like the local run (scores to float rounding)
    routed = [read_jsonl(folder / "routing.jsonl") for folder in (local, run)]
    assert [r["destination"] for r in routed[0]] == [r["destination"] for r in routed[1]]
    assert [r["score"] for r in routed[0]] == pytest.approx([r["score"] for r in routed[1]], rel=1e-4)
    sft = [json_records(folder)["sft"]["result"] for folder in (local, run)]
    assert sft[1]["final_loss"] == pytest.approx(sft[0]["final_loss"], rel=1e-4)
    assert sft[1]["trained_tokens"] == sft[0]["trained_tokens"]


def json_records(run) -> dict:
    """The committed stage records of ``run`` (``stages.json``), by stage name."""
    return json.loads((run / "stages.json").read_text())


def test_a_group_that_cannot_fit_is_refused_before_any_worker_starts(local_ray, model_config):
    with pytest.raises(LearnerGroupError, match=r"cluster.learner_workers=3 x learner_cpus=1.0 CPUs .* do not fit"):
        group_of(3, model_config, cpus=1.0)
