"""Run a comparison: every variant at every seed, extra evaluations, then the results.

Layout::

    <output_dir>/<name>/
      ablation.yaml                   the ablation as run (prism-agents report rebuilds from it)
      runs/<variant>-seed<S>/         a variant's run folder (collect ... eval, report)
      runs/<variant>-seed<S>-<split>/ the same adapter evaluated on a further ``eval_splits`` entry
      results.json  report.md  pareto.png

A run folder whose stages are all done is not touched again, so rerunning a finished comparison only
rebuilds the results. Runs share the collect, probe and SFT stages where their fingerprints match
(:mod:`~prism_agents.pipeline.sharing`), and runs with the same engine settings (seeds and sampling aside)
share one generator engine, each run sampling on its own seeded stream.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from prism_agents.comparison.ablation import Ablation, extra_evaluation_name
from prism_agents.comparison.plot import write_pareto_plot
from prism_agents.comparison.report import render_comparison
from prism_agents.comparison.results import RESULTS_FILE, comparison_results
from prism_agents.config import ConfigError, RunConfig, flat_config, to_yaml
from prism_agents.config.cluster import ClusterConfig
from prism_agents.io import write_json_atomic, write_text_atomic
from prism_agents.pipeline.context import SharedGenerators
from prism_agents.pipeline.run_folder import CONFIG_FILE, RunFolder
from prism_agents.pipeline.runner import cluster_runtime, planned_stages, run_stages

log = logging.getLogger(__name__)

ABLATION_FILE = "ablation.yaml"
"""The ablation as run (experiment path made absolute), kept in the comparison folder."""
REPORT_FILE = "report.md"
PLOT_FILE = "pareto.png"
EVAL_STAGES = ("eval", "report")


def run_comparison(ablation: Ablation) -> dict:
    """Run what is not done yet, write ``results.json``, ``report.md`` and ``pareto.png``; return the results.
    (Call :func:`~prism_agents.comparison.ablation.check_ablation` first to stop at once on a bad name or missing data.)"""
    folder = ablation.folder
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / ABLATION_FILE, ablation.resolved_yaml())
    runs = {key: open_run(ablation.run_path(*key), config, key[0]) for key, config in ablation.runs.items()}
    generators = SharedGenerators()
    # One Ray for all the runs (when any uses it), so engine replicas shared across runs outlive each run.
    on_ray = next((run.config.cluster for run in runs.values() if run.config.cluster.uses_ray), ClusterConfig())
    with cluster_runtime(on_ray):
        try:
            for run in runs.values():
                if not finished(run, planned_stages(run)):
                    log.info("comparison %s: running %s", ablation.config.name, run.path.name)
                    run_stages(run, None, donors=list(runs.values()), generators=generators)
                for split in ablation.config.eval_splits[1:]:
                    extra = extra_evaluation(run, split)
                    if not finished(extra, EVAL_STAGES):
                        run_stages(extra, EVAL_STAGES, generators=generators)
        finally:
            generators.close()
    return write_results(ablation)


def write_results(ablation: Ablation) -> dict:
    """(Re)build ``results.json``, ``report.md`` and ``pareto.png`` from the finished run folders; return the results."""
    results = comparison_results(ablation)
    write_json_atomic(ablation.folder / RESULTS_FILE, results)
    write_pareto_plot(results, ablation.folder / PLOT_FILE)
    write_text_atomic(ablation.folder / REPORT_FILE, render_comparison(results, PLOT_FILE))
    return results


def finished(run: RunFolder, stages: list[str] | tuple[str, ...]) -> bool:
    """Whether every one of ``stages`` is done in ``run``."""
    return all(run.stage_done(stage) for stage in stages)


def open_run(path: Path, config: RunConfig, variant: str) -> RunFolder:
    """The run folder at ``path``: created with ``config``, or reopened when it was made with the same config."""
    if not (path / CONFIG_FILE).is_file():
        shutil.rmtree(path, ignore_errors=True)  # a folder left without its config holds nothing usable
        return RunFolder.create(config, path)
    run = RunFolder.open(path)
    if to_yaml(run.config) != to_yaml(config):
        now, before = flat_config(config), flat_config(run.config)
        changed = sorted(key for key in now.keys() | before.keys() if now.get(key) != before.get(key))
        raise ConfigError(
            f"variant {variant!r}: {path} was started with another config (differs in {', '.join(changed)}); "
            "delete that run folder to rerun it, or give the comparison another name"
        )
    return run


def extra_evaluation(run: RunFolder, split: str) -> RunFolder:
    """The run folder evaluating ``run``'s final adapter on ``split`` (created with the adapter copied in)."""
    config = dataclasses.replace(
        run.config, name=extra_evaluation_name(run.path.name, split), eval=dataclasses.replace(run.config.eval, split=split)
    )
    extra = open_run(run.path.parent / config.name, config, run.path.name)
    adapter = run.current_adapter()
    if adapter is not None and extra.current_adapter() is None:
        extra.import_adapter(adapter)  # served and reported as this run's adapter v1
    return extra
