#!/usr/bin/env bash
# Install mova-eval into ./.venv on a fresh machine (Python 3.11+, pip, apt).
#   bash scripts/install.sh          # the package with every extra (what `mova-eval run` can use)
#   bash scripts/install.sh --test   # plus test tools, reference implementations and browser packages
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs="espeak-ng sox ffmpeg"
# texlive: the report tests compile the LaTeX table with pdflatex (about 75 s to install)
[ $want_test = 1 ] && apt_pkgs="$apt_pkgs chromium chromium-driver postgresql texlive-latex-base texlive-latex-recommended"
if command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""; [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq --no-install-recommends $apt_pkgs >/dev/null; }; then
    echo "warning: could not install Debian packages ($apt_pkgs); features that need them report so" >&2
  fi
fi

python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# The CPU build of torch first: with it pinned, no requirement can pull a CUDA build. On a GPU machine install
# your CUDA torch instead before running this script.
$py -m pip show torch >/dev/null 2>&1 || $py -m pip install -q torch==2.13.0
extras="all"
[ $want_test = 1 ] && extras="all,test"
$py -m pip install -q -e ".[${extras}]"
# Packages whose declared requirements are wrong or over-broad (they would pull torchvision, numpy<2, opencv-contrib…):
$py -m pip install -q --no-deps -r requirements/nodeps.txt
[ $want_test = 1 ] && $py -m pip install -q --no-deps -r requirements/test-nodeps.txt
echo "installed: $($py -c 'import mova_eval; print("mova-eval", mova_eval.__version__)')"
