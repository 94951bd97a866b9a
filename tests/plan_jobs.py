"""Every job Snakemake plans for a config, as JSON: rule, wildcards, input, output, params, log, threads,
resources, benchmark, conda env and script of each job of the forced DAG of ``all``, and the validated config.

    python tests/plan_jobs.py WORKDIR OUT.json CONFIGFILE [CONFIGFILE ...]

Nothing runs (the DAG is built, as ``snakemake -n --forceall`` builds it). tests/test_plan.py reads it; two
dumps of the same config from two checkouts compare a refactoring of the rules: equal files, equal plans.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plain(value):
    """JSON-able: mappings and sequences kept, anything else (a Snakemake object) as its repr."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def plan_jobs(workdir: Path, configfiles: list[Path]) -> dict:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, ResourceSettings,
                                          StorageSettings)

    with SnakemakeApi(OutputSettings()) as api:
        wf_api = api.workflow(resource_settings=ResourceSettings(cores=2),
                              config_settings=ConfigSettings(configfiles=configfiles),
                              storage_settings=StorageSettings(), snakefile=REPO / "Snakefile", workdir=workdir)
        wf_api.dag(DAGSettings(targets={"all"}, forceall=True))
        wf = wf_api._workflow  # the DAG itself: the public API prints it, but does not hand it out
        wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        wf._build_dag()
        jobs = [{
            "rule": job.rule.name,
            "wildcards": plain(dict(job.wildcards_dict)),
            "output": sorted(map(str, job.output)),
            "input": sorted(map(str, job.input)),
            "input_named": {k: plain(v) for k, v in job.input.items()},
            "params": {k: plain(v) for k, v in job.params.items()},
            "params_positional": len(job.params),
            "log": sorted(map(str, job.log)),
            "threads": job.threads,
            "resources": {k: plain(v) for k, v in job.resources.items() if k != "tmpdir"},
            "benchmark": str(job.benchmark) if job.benchmark else None,
            "conda": str(job.rule.conda_env) if job.rule.conda_env else None,
            "script": str(job.rule.script) if job.rule.script else None,
        } for job in wf.dag.jobs]
        jobs.sort(key=lambda j: (j["rule"], j["output"]))
        return {"jobs": jobs, "rules": sorted(r.name for r in wf.rules), "config": plain(dict(wf.config))}


if __name__ == "__main__":
    workdir, out, *configs = sys.argv[1:]
    dump = plan_jobs(Path(workdir), [Path(c) for c in configs])
    Path(out).write_text(json.dumps({k: dump[k] for k in ("jobs", "rules")}, indent=1, sort_keys=True))
    Path(out).with_suffix(".config.json").write_text(json.dumps(dump["config"], indent=1))  # in its order
    print(len(dump["jobs"]), "jobs", len(dump["rules"]), "rules")
