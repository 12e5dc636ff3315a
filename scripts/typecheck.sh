#!/usr/bin/env bash
# mypy over the installed-package layout: metrics/, generators/ and arena/ live at the top of the repo but import as
# mova_eval.metrics/.generators/.arena, so build a link tree build/typecheck/mova_eval with that shape and check it
# from there (configuration: [tool.mypy] in pyproject.toml). Extra arguments go to mypy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="$root/build/typecheck"
rm -rf "$tree" && mkdir -p "$tree/mova_eval"
for f in "$root"/mova_eval/*; do
  case "$(basename "$f")" in __pycache__) continue ;; esac
  ln -s "$f" "$tree/mova_eval/"
done
for d in metrics generators arena; do ln -s "$root/$d" "$tree/mova_eval/$d"; done
cd "$tree"
exec "$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$tree/.mypy_cache" -p mova_eval "$@"
