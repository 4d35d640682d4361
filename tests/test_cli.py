"""The ``elsjax`` command line: ``sample`` end to end on a tiny user-directory dataset, configs, bad input.

Every run uses a tiny IDX dataset written into tmp_path and a short schedule, so each takes seconds; no test
touches the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

import datasets_for_tests as fake  # noqa: E402

from elsjax import cli, config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("isolated")  # never a developer's cache or prepared tfds data


@pytest.fixture
def tiny(tmp_path):
    return fake.mnist_dir(tmp_path / "mnist", n_train=40)


def sample_args(data_dir, out_dir, *more):
    return ["sample", "--dataset", "mnist", "--data-dir", str(data_dir), "--limit", "30", "--scales", "3,3,3,3",
            "--n-seeds", "2", "--out-dir", str(out_dir), "--no-progress", *more]  # fmt: skip


def test_sample_writes_grid_arrays_and_record(tiny, tmp_path, capsys):
    import jax

    out = tmp_path / "run"
    assert cli.main(sample_args(tiny, out)) == 0
    # (and code.diff, the git diff of the code that ran, when the checkout is dirty)
    written = sorted(p.name for p in out.iterdir() if p.name != "code.diff")
    assert written == ["config.json", "record.json", "samples.npz", "samples.png"]

    with np.load(out / "samples.npz") as f:
        samples, seeds, labels, prng_seed = f["samples"], f["seeds"], f["labels"], int(f["prng_seed"])
    assert samples.shape == seeds.shape == (2, 32, 32, 1)
    assert labels.tolist() == [0, 1] and prng_seed == 0
    np.testing.assert_array_equal(seeds, np.asarray(jax.random.normal(jax.random.key(0), (2, 32, 32, 1))))
    assert -1.0 <= samples.min() and samples.max() <= 1.0  # inside the data range, exactly

    png = np.asarray(Image.open(out / "samples.png"))
    assert png.shape == (2 * (2 * 34 + 2), 2 * (2 * 34 + 2))  # 2 rows x 2 columns of 32 px + 2 px gaps, doubled

    record = json.loads((out / "record.json").read_text())
    assert record["config"]["kind"] == "bbels" and record["config"]["n_seeds"] == 2
    assert record["scales"] == [3, 3, 3, 3]
    assert record["data"]["source"].startswith("dir:") and record["data"]["subset"] == "first 30 images"
    assert record["data"]["preprocessing"] == "resize28to32-pil-bilinear-uint8"
    assert set(record["versions"]) >= {"elsjax", "jax", "jaxlib", "numpy", "python"}
    assert set(record["timings"]) >= {"data_s", "sample_s", "total_s"}
    assert "wrote" in capsys.readouterr().out


def test_config_file_dotted_overrides_and_flags(tiny, tmp_path):
    cfg_file = tmp_path / "exp.py"
    cfg_file.write_text(
        "from elsjax.config import sample_config\n"
        "def get_config():\n"
        "    c = sample_config()\n"
        "    c.kind = 'els'\n"
        "    c.conditional = False\n"
        "    c.n_seeds = 5\n"
        "    return c\n"
    )
    out = tmp_path / "run"
    args = sample_args(tiny, out, "--config", str(cfg_file), "--config.n_seeds=3", "--config.seed", "7")
    args.remove("--n-seeds"), args.remove("2")  # n_seeds from the dotted override
    assert cli.main(args) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["config"]["kind"] == "els" and record["config"]["n_seeds"] == 3 and record["config"]["seed"] == 7
    assert record["labels"] is None
    with np.load(out / "samples.npz") as f:
        assert f["labels"].tolist() == [-1, -1, -1]
    # plain flags win over the file and the dotted overrides
    assert cli.main(sample_args(tiny, out, "--config", str(cfg_file), "--config.n_seeds=3", "--overwrite")) == 0
    assert json.loads((out / "record.json").read_text())["config"]["n_seeds"] == 2


def test_experiment_configs_load():
    for path in sorted((REPO / "experiments" / "configs").glob("*.py")):
        if path.name.startswith("train_"):
            continue  # elsjax train's schema: tests/test_train.py
        cfg = config.merge(config.sample_config(), config.load_file(path).to_dict())
        assert cfg.scales and cfg.dataset, path


def test_one_class(tiny, tmp_path):
    out = tmp_path / "run"
    assert cli.main(sample_args(tiny, out, "--label", "4")) == 0
    assert json.loads((out / "record.json").read_text())["labels"] == [4, 4]


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "elsjax", *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_python_dash_m_and_bad_input_subprocess(tmp_path):
    done = run_cli("sample", "--dataset", "svhn", "--out-dir", str(tmp_path / "x"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "elsjax sample: error: dataset: unknown dataset 'svhn'; expected one of "
        "['celeb_a', 'cifar10', 'fashion_mnist', 'mnist']"
    )
    assert "Traceback" not in done.stderr
    listing = run_cli("scales")
    assert listing.returncode == 0 and "FashionMNIST_ResNet_zeros_conditional: 3,3,5,5" in listing.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "svhn"], "unknown dataset"),
        (["--label", "10"], "out of range"),
        (["--limit", "41"], "first 41 images"),
        (["--limit", "1"], "class(es) [1] have no images"),  # seeds cycle through classes 0, 1
        (["--scales", "3,4"], "odd integer"),
        (["--scales", "MNIST_nope"], "neither published"),
        (["--kind", "vae"], "kind"),
        (["--n-seeds", "many"], "expected int"),
        (["--config.nope=1"], "unknown field 'nope'"),
        (["--config", "missing.py"], "no such file"),
        (["--data-dir", "/nonexistent/elsjax"], "not a directory"),
        (["--source", "debian"], "debian"),
        (["--split", "valid"], "split"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny, tmp_path, capsys, extra, message):
    code = cli.main(sample_args(tiny, tmp_path / "run", *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("elsjax sample: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err


def test_missing_offline_source_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELSJAX_DEBIAN_FASHION_MNIST", str(tmp_path / "nothing"))
    code = cli.main(["sample", "--out-dir", str(tmp_path / "run"), "--no-progress"])  # the default: Fashion-MNIST
    err = capsys.readouterr().err
    assert code == 2 and "apt-get install -y dataset-fashion-mnist" in err and err.count("\n") == 1


def test_existing_output_directory_needs_overwrite(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(sample_args(tiny, out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(sample_args(tiny, out, "--overwrite")) == 0
    assert (out / "keep.txt").read_text() == "mine" and (out / "samples.png").is_file()


def test_unknown_option_and_missing_command_are_usage_errors(capsys):
    assert cli.main(["sample", "--bogus"]) == 2
    assert capsys.readouterr().err.strip() == "elsjax sample: error: unrecognized argument '--bogus'"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_train_is_registered_lazily(capsys):
    assert "train" in cli.COMMANDS
    try:
        import elsjax.commands.train  # noqa: F401
    except ModuleNotFoundError:
        assert cli.main(["train"]) == 2
        assert "not available" in capsys.readouterr().err
    else:
        pytest.skip("elsjax.commands.train exists: covered by its own tests")


def test_compilation_cache_lives_in_the_elsjax_cache(tmp_path, monkeypatch):
    import jax

    monkeypatch.setenv("ELSJAX_CACHE", str(tmp_path))
    monkeypatch.setenv("ELSJAX_COMPILATION_CACHE", "1")
    try:
        assert cli.enable_compilation_cache() == str(tmp_path / "jax")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jax")
        assert cli.enable_compilation_cache() is None  # already set: left alone
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("ELSJAX_COMPILATION_CACHE", "0")
    assert cli.enable_compilation_cache() is None and jax.config.jax_compilation_cache_dir is None
