"""fastalign._extras: a module whose optional dependency is missing names the extra to install.

The environments without torch or TRL are simulated in subprocesses (``sys.modules[name] = None``
makes ``import name`` fail as if it were not installed); tests/robustness/test_wheel.py checks the same in
real virtual environments without them.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

import fastalign
from fastalign._extras import MissingExtraError, require


def _import_without(missing: list[str], module: str) -> str:
    code = f"import sys\nfor m in {missing!r}: sys.modules[m] = None\nimport fastalign\nimport {module}"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode != 0, f"{module} imported without {missing}"
    return p.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "missing, module, message",
    [
        (
            ["torch"],
            "fastalign.losses",
            'fastalign.losses needs torch, which is not installed: pip install "fastalign[torch]"',
        ),
        (
            ["torch"],
            "fastalign.ratios",
            'fastalign.ratios needs torch, which is not installed: pip install "fastalign[torch]"',
        ),
        (["torch"], "fastalign.trl", 'fastalign.trl needs torch, which is not installed: pip install "fastalign[trl]"'),
        (["trl"], "fastalign.trl", 'fastalign.trl needs trl, which is not installed: pip install "fastalign[trl]"'),
        (
            ["transformers"],
            "fastalign.padding_free",
            'fastalign.padding_free needs transformers, which is not installed: pip install "fastalign[trl]"',
        ),
    ],
)
def test_a_missing_dependency_names_its_extra(missing, module, message):
    assert _import_without(missing, module) == f"fastalign.MissingExtraError: {message}"


def test_the_numpy_core_imports_without_torch_or_trl():
    code = (
        "import sys\nfor m in ['torch', 'trl', 'transformers', 'datasets']: sys.modules[m] = None\n"
        "import fastalign.advantages, fastalign.overlong, fastalign.rewards, fastalign.packing"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pack_dataset_without_datasets_names_the_trl_extra():
    code = (
        "import sys\nsys.modules['datasets'] = None\nimport numpy as np\n"
        "from fastalign.packing import pack_dataset\npack_dataset({'ids': [[1, 2]]}, 8)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stderr.strip().splitlines()[-1] == (
        "fastalign.MissingExtraError: fastalign.packing.pack_dataset needs datasets, which is not installed: "
        'pip install "fastalign[trl]"'
    )


def test_require():
    import json

    assert require("json", "test") is json
    with pytest.raises(MissingExtraError, match=r'^fastalign.x needs vllm, .*pip install "fastalign\[vllm\]"$') as info:
        require("vllm", "fastalign.x")  # not in the dev environment
    assert info.value.name == "vllm" and info.value.extra == "vllm" and isinstance(info.value, ImportError)
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is fastalign.MissingExtraError and str(clone) == str(info.value)
    # not one of the optional packages, or an installed one with a part missing: the error as it was
    with pytest.raises(ModuleNotFoundError) as info:
        require("no_such_package_anywhere", "fastalign.x")
    assert type(info.value) is ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError) as info:
        require("torch.no_such_submodule", "fastalign.x")  # torch is installed
    assert type(info.value) is ModuleNotFoundError
