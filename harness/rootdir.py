"""The project root: pytest's rootdir, determined from the command line's path arguments.

No TensorFlow.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest


def project_root(config: pytest.Config) -> Path:
    """The rootdir pytest determines from `config`'s ini file, `--rootdir` and path arguments.

    The same determination as pytest's own (`_pytest.config.findpaths.determine_setup`), run on
    the path arguments of the full parse, which no longer holds any option's value.
    """
    from _pytest.config.findpaths import determine_setup

    option = config.option
    arguments: dict[str, Any] = {
        "inifile": option.inifilename,
        "args": [str(arg) for arg in option.file_or_dir or []],
        "rootdir_cmd_arg": option.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
    }
    if "override_ini" in inspect.signature(determine_setup).parameters:  # pytest 9
        arguments["override_ini"] = option.override_ini
    try:
        root, *_ = determine_setup(**arguments)
    except TypeError:  # a pytest whose private signature changed again: its own rootdir, as before
        return config.rootpath
    return Path(root)
