"""``elsjax calibrate``: see :mod:`elsjax.jobs.calibrate`."""

from __future__ import annotations

from elsjax import commands
from elsjax import config as config_lib

ACCEPTS_EXTRA = True  # --config.FIELD=VALUE overrides
COMPILES = True  # the command line keeps compiled programs on disk (see elsjax.cli.enable_compilation_cache)


def summary(record: dict, cfg) -> str:
    if cfg.knob:
        return (f"{cfg.knob} = {record['best']} (the highest mean cosine with the net)\n"
                f"wrote {cfg.out_dir}/: knob_calibration.json, config.json, record.json\n"
                f"time: {record['timings']['total_s']:.1f} s")  # fmt: skip
    lines = [f"median k per step (t = 1/n ... 1): {','.join(map(str, record['median']))}"]
    if record["published"]:
        name = cfg.published if isinstance(cfg.published, str) else "scales"  # a name, or the list itself
        lines.append(f"published {name}:{' ' * 8}{','.join(map(str, record['published']))}")
    lines.append(f"wrote {cfg.out_dir}/: calibration.json, calibration.png, config.json, record.json")
    lines.append(f"time: {record['timings']['total_s']:.1f} s")
    return "\n".join(lines)


add_arguments, run = commands.job_command(config_lib.CALIBRATE_FIELDS, "calibrate", summary)
