"""The ``--config-file`` of ``bids-dfc``: a TOML file turned into command-line tokens, so that
its values go through the same parser (types, checks, messages) as the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def toml_tokens(parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """Turn a TOML config file into command-line tokens, checking every key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        parser.error(f"argument --config-file: {path} is not valid TOML ({exc})")
    options = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and action.dest not in {"help", "version", "config_file"}
    }
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in {"execution", "workflow", "group"}:
            flat.update(value)
        else:
            flat[key] = value
    tokens: list[str] = []
    for key, value in flat.items():
        dest = key.replace("-", "_")
        if dest not in options:
            parser.error(
                f"argument --config-file: unknown key {key!r} in {path}; valid keys: "
                + ", ".join(sorted(k.replace("_", "-") for k in options))
            )
        action = options[dest]
        flag = action.option_strings[-1] if dest == "verbose" else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if value is True:
                tokens.append(flag)
            elif value is not False:
                parser.error(f"argument --config-file: {key} must be true or false in {path}")
        elif isinstance(action, argparse._CountAction):
            tokens += [flag] * int(value)
        elif isinstance(value, dict):
            tokens += [flag, json.dumps(value)]
        elif isinstance(value, list):
            tokens += [flag, *map(str, value)]
        else:
            tokens += [flag, str(value)]
    return tokens
